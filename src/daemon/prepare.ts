import { ensureDirectory } from '../fs/atomic.js';
import { ensureRuntimeRoot } from '../fs/runtime-root.js';
import type { InstanceOptions, RuntimeLayout } from '../options/index.js';
import { dropPrivileges, isRoot, lookupUser } from '../process/privileges.js';

/**
 * Creates the runtime layout and, when started as root, hands it and PGDATA to the postgres user and becomes that
 * user: nothing after this point runs as root. Returns whether privileges were dropped.
 */
export async function prepareFilesystem(options: InstanceOptions, layout: RuntimeLayout): Promise<boolean> {
  const dirs = [layout.root, layout.socketDir, layout.logDir, layout.certificatesDir, layout.tmpDir];
  // The root is often a mount point (tmpfs, emptyDir) that a non-root pgim does not own: see ensureRuntimeRoot.
  await ensureRuntimeRoot(layout.root, 0o750);
  for (const dir of dirs.slice(1)) await ensureDirectory(dir, 0o700);
  process.umask(0o077);
  if (!isRoot()) return false;
  await ensureDirectory(options.pgdata, 0o700);
  await dropPrivileges(lookupUser(options.user), [options.pgdata, ...dirs]);
  return true;
}
