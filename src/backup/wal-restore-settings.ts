import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BarmanObjectStore } from '../cluster/backup.js';
import { cloudArgs } from './barman.js';

/**
 * What `pgim wal-restore` (PostgreSQL's restore_command) and the process serving it (wal-restore-server.ts) read:
 * the store to restore from, written by the daemon (this cluster's own store, for replicas) or by a restore (the
 * source's store), 0600 in a 0700 folder.
 */
export interface RestoreSettings {
  readonly version: 1;
  /** Undefined: no object store to restore from (CNPG's ErrNoBackupConfigured: "not there", quietly). */
  readonly store: BarmanObjectStore | undefined;
  /** Credentials and AWS_CA_BUNDLE for the store. */
  readonly env: Readonly<Record<string, string>>;
  /** A primary to stream from exists (this is a replica): the end-of-wal-stream flag is used. */
  readonly streamingAvailable: boolean;
}

export interface RestorePaths {
  readonly dir: string;
  readonly settings: string;
  readonly spool: string;
  /** The socket of the long-lived process that serves `pgim wal-restore` (0600). */
  readonly socket: string;
}

export function restorePaths(runtimeDir: string): RestorePaths {
  const dir = join(runtimeDir, 'wal-restore');
  return { dir, settings: join(dir, 'settings.json'), spool: join(runtimeDir, 'wal-restore-spool'), socket: join(dir, 'restorer.sock') };
}

export const endOfWalStreamFlag = 'end-of-wal-stream';

export async function readRestoreSettings(paths: RestorePaths): Promise<RestoreSettings> {
  const parsed = JSON.parse(await readFile(paths.settings, 'utf8')) as Partial<RestoreSettings>;
  if (parsed.version !== 1 || parsed.env === undefined) throw new Error(`${paths.settings}: unknown version`);
  return parsed as RestoreSettings;
}

/** barman-cloud-wal-restore's arguments (CNPG's CloudWalRestoreOptions), the segment and destination last. */
export function walRestoreArgs(store: BarmanObjectStore, walName: string, destination: string): string[] {
  const base = [...cloudArgs(store), store.destinationPath, store.serverName];
  const extra = store.wal.restoreAdditionalCommandArgs.filter((arg) => {
    const key = arg.split('=')[0] ?? '';
    return key !== '' && !base.includes(key);
  });
  return [...base, ...extra, walName, destination];
}

const walNamePattern = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/;

/**
 * CNPG's NextSegments for 16 MB segments: `walName` and the `count - 1` segments after it on the same timeline.
 * A name that is not a segment (a `.history` file, a `.partial`, a `.backup`) is fetched alone.
 */
export function segmentsToFetch(walName: string, count: number, segmentBytes = 16 * 1024 * 1024): string[] {
  const match = walNamePattern.exec(walName);
  if (!match || count <= 1) return [walName];
  const perLog = Math.floor(0x1_0000_0000 / segmentBytes);
  const tli = match[1] ?? '';
  let log = Number.parseInt(match[2] ?? '0', 16);
  let seg = Number.parseInt(match[3] ?? '0', 16);
  const out = [walName];
  while (out.length < count) {
    seg++;
    if (seg >= perLog) {
      seg = 0;
      log++;
      if (log > 0xffffffff) break;
    }
    out.push(`${tli}${log.toString(16).toUpperCase().padStart(8, '0')}${seg.toString(16).toUpperCase().padStart(8, '0')}`);
  }
  return out;
}
