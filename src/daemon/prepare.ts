import type { Cluster } from '../cluster/schema.js';
import type { ControlPlane } from '../controlplane/index.js';
import { resolveCredentials, type Credentials } from '../credentials/index.js';
import { ensureDirectory } from '../fs/atomic.js';
import type { InstanceOptions, RuntimeLayout } from '../options/index.js';
import { runtimeLayout } from '../options/index.js';
import { renderConfiguration, type RenderedConfiguration } from '../render/index.js';
import { currentOsUserName, dropPrivileges, isRoot, lookupUser } from '../supervisor/privileges.js';

/** Everything read and validated before pgim touches the disk. */
export interface DesiredState {
  controlPlane: ControlPlane;
  cluster: Cluster;
  credentials: Credentials;
  rendered: RenderedConfiguration;
  layout: RuntimeLayout;
  osUser: string;
  port: number;
}

/**
 * Reads the Cluster and its Secrets and renders every file, all in memory. Any ConfigError surfaces here, before a
 * folder is created or a byte written.
 */
export async function loadDesiredState(options: InstanceOptions, controlPlane: ControlPlane): Promise<DesiredState> {
  const cluster = await controlPlane.readCluster();
  const credentials = await resolveCredentials(controlPlane, cluster);
  const osUser = isRoot() ? lookupUser(options.user).name : currentOsUserName();
  const layout = runtimeLayout(options.runtimeDir);
  const rendered = renderConfiguration({
    cluster,
    source: controlPlane.clusterSource,
    osUser,
    port: options.pgPort,
    listenAddresses: options.listenAddress,
    socketDirectory: layout.socketDir,
  });
  return { controlPlane, cluster, credentials, rendered, layout, osUser, port: options.pgPort };
}

/**
 * Creates the runtime layout and, when started as root, hands it and PGDATA to the postgres user and becomes that
 * user: nothing after this point runs as root. Returns whether privileges were dropped.
 */
export async function prepareFilesystem(options: InstanceOptions, layout: RuntimeLayout): Promise<boolean> {
  const dirs = [layout.root, layout.socketDir, layout.logDir, layout.certificatesDir, layout.tmpDir];
  for (const dir of dirs) await ensureDirectory(dir, dir === layout.root ? 0o750 : 0o700);
  process.umask(0o077);
  if (!isRoot()) return false;
  await ensureDirectory(options.pgdata, 0o700);
  await dropPrivileges(lookupUser(options.user), [options.pgdata, ...dirs]);
  return true;
}
