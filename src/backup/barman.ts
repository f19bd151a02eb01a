import type { BarmanObjectStore } from '../cluster/backup.js';

/**
 * barman-cloud command lines, built as CloudNativePG's barman-cloud library builds them (`pkg/archiver/command.go`,
 * `pkg/backup/backup.go`, `pkg/command/*.go`), for the Debian barman-cli-cloud 3.4 tools. Pure: arguments only.
 * Credentials never appear here; they travel in the environment (see credentials.ts).
 */

const compressionFlag: Readonly<Record<string, string>> = { gzip: '--gzip', bzip2: '--bzip2', snappy: '--snappy' };

/** `--tags k,v ...` (CNPG's MapToBarmanTagsFormat), keys sorted so a command line is reproducible. */
function tagArgs(flag: string, tags: Readonly<Record<string, string>>): string[] {
  const entries = Object.entries(tags).sort(([a], [b]) => a.localeCompare(b));
  return entries.length === 0 ? [] : [flag, ...entries.map(([k, v]) => `${k},${v}`)];
}

/** `--endpoint-url URL --cloud-provider aws-s3`: the part every tool shares. */
export function cloudArgs(store: BarmanObjectStore): string[] {
  return [...(store.endpointURL === undefined ? [] : ['--endpoint-url', store.endpointURL]), '--cloud-provider', 'aws-s3'];
}

/**
 * CNPG's appendAdditionalCommandArgs: an extra argument is skipped when its key (the text before `=`) is empty or
 * already among the options built so far.
 */
function additional(built: readonly string[], extra: readonly string[]): string[] {
  const out: string[] = [];
  for (const arg of extra) {
    const key = arg.split('=')[0] ?? '';
    if (key === '' || built.includes(key) || out.some((o) => o.split('=')[0] === key)) continue;
    out.push(arg);
  }
  return out;
}

export function walArchiveArgs(store: BarmanObjectStore, walPath: string): string[] {
  const options: string[] = [];
  if (store.wal.compression !== undefined) options.push(compressionFlag[store.wal.compression] ?? `--${store.wal.compression}`);
  if (store.wal.encryption !== undefined) options.push('-e', store.wal.encryption);
  options.push(...additional(options, store.wal.archiveAdditionalCommandArgs));
  if (store.endpointURL !== undefined) options.push('--endpoint-url', store.endpointURL);
  options.push(...tagArgs('--tags', store.tags), ...tagArgs('--history-tags', store.historyTags));
  return [...options, '--cloud-provider', 'aws-s3', store.destinationPath, store.serverName, walPath];
}

export function checkWalArchiveArgs(store: BarmanObjectStore): string[] {
  return [...cloudArgs(store), store.destinationPath, store.serverName];
}

export function backupArgs(store: BarmanObjectStore, backupName: string, connection: { host: string; port: number; user: string }): string[] {
  const options = ['--user', connection.user, '--host', connection.host, '--port', String(connection.port), '--name', backupName];
  if (store.data.compression !== undefined) options.push(compressionFlag[store.data.compression] ?? `--${store.data.compression}`);
  if (store.data.encryption !== undefined) options.push('--encryption', store.data.encryption);
  if (store.data.immediateCheckpoint) options.push('--immediate-checkpoint');
  if (store.data.jobs !== undefined) options.push('--jobs', String(store.data.jobs));
  options.push(...additional(options, store.data.additionalCommandArgs));
  options.push(...tagArgs('--tags', store.tags));
  return [...options, ...cloudArgs(store), store.destinationPath, store.serverName];
}

export function backupListArgs(store: BarmanObjectStore): string[] {
  return ['--format', 'json', ...cloudArgs(store), store.destinationPath, store.serverName];
}

export function backupDeleteArgs(store: BarmanObjectStore, retentionPolicy: string): string[] {
  return [...cloudArgs(store), '--retention-policy', retentionPolicy, store.destinationPath, store.serverName];
}

/** One entry of `barman-cloud-backup-list --format json` (3.4 prints ctime strings, no `*_iso` fields). */
export interface CatalogEntry {
  readonly backupId: string;
  readonly backupName: string | undefined;
  readonly status: string;
  readonly beginTime: Date | undefined;
  readonly endTime: Date | undefined;
  readonly beginWal: string | undefined;
  readonly endWal: string | undefined;
  readonly beginLSN: string | undefined;
  readonly endLSN: string | undefined;
  readonly timeline: number | undefined;
}

/**
 * Barman 3.4 prints `begin_time` as Python's `str(datetime)` with the zone (`2026-12-05 01:20:03.123456+00:00`);
 * CNPG also accepts the ctime layout. Both parse here; anything else is "unknown".
 */
export function parseBarmanTime(value: unknown): Date | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  // `2026-12-05 01:20:03.123456+00:00`: ISO 8601 with a space; without a zone it is UTC. Anything else (ctime) as is.
  const isoLike = /^\d{4}-\d\d-\d\d[ T]\d\d:/.test(value);
  const iso = isoLike ? value.replace(' ', 'T') : value;
  const parsed = new Date(!isoLike || /(?:[+-]\d\d:?\d\d|Z)$/.test(iso) ? iso : `${iso}Z`);
  return Number.isNaN(parsed.getTime()) ? undefined : parsed;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

export function parseCatalogEntry(raw: Record<string, unknown>): CatalogEntry {
  return {
    backupId: str(raw.backup_id) ?? '',
    backupName: str(raw.backup_name),
    status: str(raw.status) ?? '',
    beginTime: parseBarmanTime(raw.begin_time_iso ?? raw.begin_time),
    endTime: parseBarmanTime(raw.end_time_iso ?? raw.end_time),
    beginWal: str(raw.begin_wal),
    endWal: str(raw.end_wal),
    beginLSN: str(raw.begin_xlog),
    endLSN: str(raw.end_xlog),
    timeline: typeof raw.timeline === 'number' ? raw.timeline : undefined,
  };
}

/** `{"backups_list": [...]}`, sorted oldest first; CNPG counts a backup as done when both times are set. */
export function parseBackupList(stdout: string): CatalogEntry[] {
  const parsed = JSON.parse(stdout) as { backups_list?: Record<string, unknown>[] };
  return sortCatalog((parsed.backups_list ?? []).map(parseCatalogEntry));
}

/** Oldest first (by begin time, then id), as pgim reads every catalog. */
export function sortCatalog(entries: CatalogEntry[]): CatalogEntry[] {
  return entries.sort((a, b) => (a.beginTime?.getTime() ?? 0) - (b.beginTime?.getTime() ?? 0) || a.backupId.localeCompare(b.backupId));
}

export function isDone(entry: CatalogEntry): boolean {
  return entry.status === 'DONE' && entry.beginTime !== undefined && entry.endTime !== undefined;
}

/** CNPG's UpdateBackupTimes for barman: the end of the oldest and of the newest done backup. */
export function recoverabilityTimes(catalog: readonly CatalogEntry[]): { firstRecoverabilityPoint: Date | undefined; lastSuccessfulBackup: Date | undefined } {
  const done = catalog.filter(isDone);
  return { firstRecoverabilityPoint: done[0]?.endTime, lastSuccessfulBackup: done.at(-1)?.endTime };
}
