import { access, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ensureDirectory } from '../fs/atomic.js';
import { ensureRuntimeRoot } from '../fs/runtime-root.js';
import type { InstanceOptions, RuntimeLayout } from '../options/index.js';
import { dropPrivileges, isRoot, lookupUser } from '../process/privileges.js';
import { tablespacesRoot } from '../options/index.js';
import { tablespaceLocation, type TablespaceSpec } from '../cluster/tablespaces.js';

/**
 * Creates the runtime layout and, when started as root, hands it and PGDATA to the postgres user and becomes that
 * user: nothing after this point runs as root. Returns whether privileges were dropped.
 */
export async function prepareFilesystem(options: InstanceOptions, layout: RuntimeLayout, tablespaces: readonly TablespaceSpec[] = []): Promise<boolean> {
  const dirs = [layout.root, layout.socketDir, layout.logDir, layout.certificatesDir, layout.tmpDir];
  // The root is often a mount point (tmpfs, emptyDir) that a non-root pgim does not own: see ensureRuntimeRoot.
  await ensureRuntimeRoot(layout.root, 0o750);
  for (const dir of dirs.slice(1)) await ensureDirectory(dir, 0o700);
  process.umask(0o077);
  if (!isRoot()) return false;
  await ensureDirectory(options.pgdata, 0o700);
  await dropPrivileges(lookupUser(options.user), [options.pgdata, ...dirs, ...(await tablespaceFolders(options, tablespaces))]);
  return true;
}

/**
 * Started as root: each tablespace's folder, made now and handed to the postgres user with the call above (in files
 * mode the root and `<root>/<name>` too; in Kubernetes mode only `data`, inside the operator's mount point, which
 * must be there: a missing one is left to the tablespace pass, which reports it).
 */
async function tablespaceFolders(options: InstanceOptions, tablespaces: readonly TablespaceSpec[]): Promise<string[]> {
  const root = tablespacesRoot(options);
  const files = options.kubernetes === undefined;
  const paths: string[] = [];
  for (const { name } of tablespaces) {
    const data = tablespaceLocation(root, name);
    if (!files && !(await access(dirname(data)).then(() => true, () => false))) continue;
    await mkdir(data, { recursive: true, mode: 0o700 });
    paths.push(...(files ? [root, dirname(data)] : []), data);
  }
  return [...new Set(paths)];
}
