import { access, chmod, mkdir, open, readdir, rename, rm, statfs, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ExitCode } from '../errors/index.js';
import { CannotStartError } from './cannot-start.js';

/** Raised when pg_wal cannot take one more segment; CNPG's exit code for it is 4. */
export class WalSpaceError extends CannotStartError {
  override readonly name = 'WalSpaceError';
  constructor(message: string) {
    super(message, ExitCode.noWalSpace);
  }
}

/**
 * Before each start: can pg_wal take one more segment? PostgreSQL that runs out of WAL space stops hard, so a
 * start that cannot even write one segment is refused with a clear message (CNPG's `CheckHasDiskSpaceForWAL`).
 */
export async function checkWalSpace(pgdata: string, segmentBytes: number): Promise<void> {
  const walDir = join(pgdata, 'pg_wal');
  const { bavail, bsize } = await statfs(walDir);
  // Plenty of room by the filesystem's count: a small write proves the volume is writable. Writing (and syncing)
  // a whole segment at every start is kept for tight volumes, where only a real write tells the truth.
  const plenty = bavail * bsize >= 4 * segmentBytes;
  const probe = join(walDir, '.pgim-wal-space-probe');
  const handle = await open(probe, 'w', 0o600);
  try {
    const chunk = Buffer.alloc(plenty ? 4096 : 1024 * 1024);
    const total = plenty ? chunk.length : segmentBytes;
    for (let written = 0; written < total; written += chunk.length) {
      await handle.write(chunk, 0, Math.min(chunk.length, total - written));
    }
    if (!plenty) await handle.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      throw new WalSpaceError(`no space left for WAL in ${walDir}: a ${segmentBytes}-byte segment does not fit; free space or grow the volume`);
    }
    throw err;
  } finally {
    await handle.close();
    await rm(probe, { force: true });
  }
}

/**
 * Where a bootstrap in progress is recorded: beside PGDATA (initdb needs PGDATA empty), or in the runtime dir when
 * PGDATA's parent is not writable. Present at start = the last bootstrap did not finish.
 */
export class BootstrapMarker {
  constructor(
    private readonly pgdata: string,
    private readonly runtimeDir: string,
  ) {}

  private get candidates(): string[] {
    return [join(dirname(this.pgdata), `.${basename(this.pgdata)}.pgim-bootstrap`), join(this.runtimeDir, 'bootstrap-in-progress')];
  }

  async set(): Promise<void> {
    for (const path of this.candidates) {
      try {
        await writeFile(path, `${new Date().toISOString()}\n`, { mode: 0o600 });
        return;
      } catch {
        // not writable here; try the next place
      }
    }
  }

  async isSet(): Promise<boolean> {
    for (const path of this.candidates) {
      if (await access(path).then(() => true, () => false)) return true;
    }
    return false;
  }

  async clear(): Promise<void> {
    for (const path of this.candidates) await rm(path, { force: true });
  }
}

/** `<pgdata>_<timestamp>`: a cluster pgim will not use is kept beside PGDATA, never deleted (as CNPG does). */
export async function moveAside(pgdata: string): Promise<string> {
  const target = `${pgdata}_${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '')}`;
  await rename(pgdata, target);
  await mkdir(pgdata, { mode: 0o700 });
  return target;
}

/** Empties PGDATA (an initdb that never produced a valid control file), keeping the folder itself. */
export async function emptyDirectory(dir: string): Promise<void> {
  for (const entry of await readdir(dir)) await rm(join(dir, entry), { recursive: true, force: true });
}

/** PostgreSQL refuses a PGDATA readable by others; CNPG enforces 0700 before every start. */
export async function enforceDataDirectoryMode(pgdata: string): Promise<void> {
  await chmod(pgdata, 0o700);
}

/**
 * CNPG's flag file in PGDATA: written at the bootstrap, before the first start; while it exists, the first WAL
 * archive checks that the object store holds no other cluster's WAL (src/backup), then removes it.
 */
export const checkEmptyWalArchiveFlag = '.check-empty-wal-archive';
