import { parseCatalogEntry, type CatalogEntry } from './barman.js';
import { pythonPathJoin } from './wal-object.js';

/**
 * A base backup in a Barman Cloud store, read as Barman 3.4 reads it (barman/infofile.py, barman/cloud.py
 * CloudBackupCatalog, barman/clients/cloud_restore.py), so pgim lists and restores the backups that
 * barman-cloud-backup wrote without starting Python. Pure: keys and texts in, decisions out.
 *
 * - `<path>/<serverName>/base/<backup_id>/backup.info`: `key=value` lines (FieldListFile.load), `None` for unset;
 * - `data.tar[.gz|.bz2|.snappy]` holds PGDATA, `<oid>.tar...` each tablespace, and `data_0001.tar...` etc. the
 *   further parts Barman starts when a tar outgrows `--max-archive-size`.
 */

/** The backup.info fields pgim reads (the rest is kept in `raw`). */
export interface BackupInfo {
  readonly backupId: string;
  readonly raw: Readonly<Record<string, string | undefined>>;
  readonly status: string;
  readonly version: number | undefined;
  readonly tablespaces: readonly Tablespace[];
  readonly snapshots: boolean;
}

export interface Tablespace {
  readonly name: string;
  readonly oid: number;
  readonly location: string;
}

/** FieldListFile.load: `key=value` lines, blank lines and `#` comments skipped, `None` is unset. */
export function parseBackupInfo(backupId: string, text: string): BackupInfo {
  const raw: Record<string, string | undefined> = {};
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.trimEnd().startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq < 0) throw new Error(`invalid line ${line.trim()} in backup.info`);
    const value = line.slice(eq + 1).trim();
    raw[line.slice(0, eq).trim()] = value === 'None' ? undefined : value;
  }
  const version = raw.version === undefined ? undefined : Number.parseInt(raw.version, 10);
  return {
    backupId,
    raw,
    status: raw.status ?? 'EMPTY',
    version: Number.isNaN(version) ? undefined : version,
    tablespaces: raw.tablespaces === undefined ? [] : parseTablespaces(raw.tablespaces),
    snapshots: raw.snapshots_info !== undefined,
  };
}

/** infofile.load_tablespace_list: the Python literal `[('name', 16385, '/path'), ...]` (repr of a list of tuples). */
export function parseTablespaces(literal: string): Tablespace[] {
  let at = 0;
  const fail = (): never => {
    throw new Error(`cannot parse the tablespaces of backup.info: ${literal.slice(0, 200)}`);
  };
  const skip = (): void => {
    while (at < literal.length && /\s/.test(literal[at] ?? '')) at++;
  };
  const expect = (ch: string): void => {
    skip();
    if (literal[at] !== ch) fail();
    at++;
  };
  const value = (): string | number => {
    skip();
    const quote = literal[at];
    if (quote === "'" || quote === '"') {
      at++;
      let out = '';
      while (at < literal.length && literal[at] !== quote) {
        const ch = literal[at++] ?? '';
        if (ch !== '\\') {
          out += ch;
          continue;
        }
        const esc = literal[at++] ?? '';
        const hex = (n: number): string => {
          const code = Number.parseInt(literal.slice(at, at + n), 16);
          if (Number.isNaN(code)) fail();
          at += n;
          return String.fromCodePoint(code);
        };
        const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"' };
        const plain = simple[esc];
        if (plain !== undefined) out += plain;
        else if (esc === 'x') out += hex(2);
        else if (esc === 'u') out += hex(4);
        else if (esc === 'U') out += hex(8);
        else fail();
      }
      if (literal[at] !== quote) fail();
      at++;
      return out;
    }
    const match = /^-?\d+/.exec(literal.slice(at));
    if (match === null) return fail();
    at += match[0].length;
    return Number.parseInt(match[0], 10);
  };
  const out: Tablespace[] = [];
  expect('[');
  skip();
  while (literal[at] !== ']') {
    expect('(');
    const name = value();
    expect(',');
    const oid = value();
    expect(',');
    const location = value();
    expect(')');
    if (typeof name !== 'string' || typeof oid !== 'number' || typeof location !== 'string') fail();
    out.push({ name: name as string, oid: oid as number, location: location as string });
    skip();
    if (literal[at] === ',') at++;
    skip();
    if (at >= literal.length) fail();
  }
  return out;
}

const weekdays = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];
const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * What BackupInfo.to_json prints for a time: Python's `datetime.ctime()` of the value backup.info holds, i.e. its
 * wall clock in its own zone, to the second (`Sat Dec  5 11:10:23 2026`). barman-cloud-backup writes
 * `str(datetime)` (`2026-12-05 11:10:23.123456+00:00`); anything else is passed through for parseBarmanTime.
 */
export function pythonCtime(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)/.exec(value);
  if (match === null) return value;
  const [, y, mo, d, h, mi, s] = match.map(Number) as [number, number, number, number, number, number, number];
  // Monday = 0, as Python's weekday().
  const weekday = (new Date(Date.UTC(y, mo - 1, d)).getUTCDay() + 6) % 7;
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${weekdays[weekday] ?? ''} ${months[mo - 1] ?? ''} ${String(d).padStart(2, ' ')} ${pad(h)}:${pad(mi)}:${pad(s)} ${y}`;
}

/** The catalog entry barman-cloud-backup-list --format json prints for this backup (BackupInfo.to_json). */
export function catalogEntry(info: BackupInfo): CatalogEntry {
  const timeline = info.raw.timeline === undefined ? undefined : Number.parseInt(info.raw.timeline, 10);
  return parseCatalogEntry({
    backup_id: info.backupId,
    backup_name: info.raw.backup_name,
    status: info.status,
    begin_time: pythonCtime(info.raw.begin_time),
    end_time: pythonCtime(info.raw.end_time),
    begin_wal: info.raw.begin_wal,
    end_wal: info.raw.end_wal,
    begin_xlog: info.raw.begin_xlog,
    end_xlog: info.raw.end_xlog,
    timeline: timeline === undefined || Number.isNaN(timeline) ? undefined : timeline,
  });
}

/** CloudBackupCatalog.prefix: `<path>/<serverName>/base` (no leading slash, as list_bucket strips it). */
export function basePrefix(path: string, serverName: string): string {
  return pythonPathJoin(path, serverName, 'base').replace(/^\/+/, '');
}

/** get_backup_list: the backup ids among the folders (common prefixes) listed under `<base>/`. */
export function backupIdsFromListing(commonPrefixes: readonly string[]): string[] {
  return commonPrefixes
    .filter((p) => p.endsWith('/'))
    .map((p) => p.replace(/\/+$/, ''))
    .map((p) => p.slice(p.lastIndexOf('/') + 1));
}

export type TarCompression = 'gzip' | 'bzip2' | 'snappy' | undefined;

/** One tar of a backup and where it is extracted. */
export interface BackupTar {
  readonly key: string;
  readonly compression: TarCompression;
  /** undefined: PGDATA; else the tablespace's oid. */
  readonly oid: number | undefined;
}

/** A backup file (PGDATA or a tablespace): its main tar and the further parts, in the order Barman extracts them. */
export interface BackupFile {
  readonly oid: number | undefined;
  readonly base: string;
  readonly tars: readonly BackupTar[];
}

const extensions: Readonly<Record<string, TarCompression | null>> = { tar: undefined, 'tar.gz': 'gzip', 'tar.bz2': 'bzip2', 'tar.snappy': 'snappy' };

/**
 * CloudBackupCatalog.get_backup_files: which listed keys under `<base>/<backup_id>/` are PGDATA's and each
 * tablespace's tars (`data.tar.gz`, `data_0001.tar.gz`, `16385.tar`, ...). Throws "Missing file" (Barman's exit 1)
 * when PGDATA or a tablespace has none.
 */
export function backupFiles(sourceDir: string, info: BackupInfo, keys: readonly string[]): BackupFile[] {
  const files = [
    { oid: undefined as number | undefined, base: pythonPathJoin(sourceDir, 'data'), main: undefined as BackupTar | undefined, additional: [] as BackupTar[] },
    ...info.tablespaces.map((t) => ({ oid: t.oid, base: pythonPathJoin(sourceDir, String(t.oid)), main: undefined as BackupTar | undefined, additional: [] as BackupTar[] })),
  ];
  for (const key of keys) {
    for (const file of files) {
      if (!key.startsWith(file.base)) continue;
      const suffix = key.slice(file.base.length);
      // A key that merely starts with the base (`data2.tar` for `data`) is not this file's.
      if (suffix === '' || (suffix[0] !== '.' && suffix[0] !== '_')) continue;
      const additional = suffix[0] === '_';
      const ext = additional ? (suffix.split('.').slice(1).join('.') || suffix) : suffix.slice(1);
      const compression = extensions[ext];
      // Barman skips an unknown extension (with a warning) and looks no further for this key.
      if (compression === null || !(ext in extensions)) break;
      const tar: BackupTar = { key, compression, oid: file.oid };
      if (additional) file.additional.push(tar);
      else file.main = tar;
      break;
    }
  }
  return files.map((file) => {
    if (file.main === undefined && !info.snapshots) throw new Error(`Missing file ${file.base}.* for server ${info.raw.server_name ?? '?'}`);
    return { oid: file.oid, base: file.base, tars: [...(file.main === undefined ? [] : [file.main]), ...file.additional] };
  });
}

/** BackupInfo.wal_directory: pg_wal from PostgreSQL 10 on. */
export function walDirectory(info: BackupInfo): string {
  return (info.version ?? 100000) >= 100000 ? 'pg_wal' : 'pg_xlog';
}
