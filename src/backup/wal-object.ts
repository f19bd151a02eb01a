import type { BarmanObjectStore } from '../cluster/backup.js';

/**
 * Where and how `barman-cloud-wal-archive` 3.4 stores one WAL file (barman/clients/cloud_walarchive.py,
 * barman/xlog.py, barman/cloud_providers/aws_s3.py), so pgim can write the very same object itself. Pure.
 *
 * - key: `os.path.join(<path of destinationPath>, serverName, "wals", hash_dir(name), name[+ext])`, where hash_dir
 *   is `%08X%08X` of the timeline and log (the first 16 characters) and is empty for a `.history` file;
 * - body: the file as it is (no compression), uploaded by boto3's `upload_fileobj`: one PutObject below 8 MiB,
 *   a multipart upload in 8 MiB parts from 8 MiB up (s3transfer's defaults), so even the ETag is Barman's;
 * - no Content-Type, no metadata; `Tagging` is Python's `urlencode(tags)` (history files: `historyTags` when
 *   set, else `tags`); `ServerSideEncryption` is `wal.encryption`.
 */

/** barman.xlog's `_xlog_re`, one shape at a time: a segment, a `.partial` segment, a `.backup` label, a `.history` file. */
const segmentNames = [/^[0-9A-Fa-f]{24}$/, /^[0-9A-Fa-f]{24}\.partial$/, /^[0-9A-Fa-f]{24}\.[0-9A-Fa-f]{8}\.backup$/];
const isSegmentName = (name: string): boolean => segmentNames.some((re) => re.test(name));
const historyName = /^[0-9A-Fa-f]{8}\.history$/;

export function isHistoryFile(name: string): boolean {
  return historyName.test(name);
}

export function isAnyXlogFile(name: string): boolean {
  return isSegmentName(name) || historyName.test(name);
}

/** barman.xlog.hash_dir: `%08X%08X` (timeline, log) for segments, '' for history files. */
export function hashDir(name: string): string {
  if (historyName.test(name)) return '';
  if (!isSegmentName(name)) throw new Error(`${name} is an invalid name for a WAL file`);
  return name.slice(0, 16).toUpperCase();
}

/** Python's posixpath.join: a component starting with '/' restarts the path; '' adds a trailing slash. */
export function pythonPathJoin(first: string, ...rest: string[]): string {
  let path = first;
  for (const part of rest) {
    if (part.startsWith('/')) path = part;
    else if (path === '' || path.endsWith('/')) path += part;
    else path += `/${part}`;
  }
  return path;
}

/** `s3://bucket/some/path` -> bucket and the path without its leading slashes (urlparse's netloc and path). */
export function parseDestination(destinationPath: string): { bucket: string; path: string } {
  const match = /^s3:\/\/([^/?#]+)([^?#]*)/.exec(destinationPath);
  if (match === null) throw new Error(`Invalid s3 URL address: ${destinationPath}`);
  return { bucket: match[1] ?? '', path: (match[2] ?? '').replace(/^\/+/, '') };
}

/** The object key barman-cloud-wal-archive (no compression) gives `walName`. */
export function walObjectKey(store: Pick<BarmanObjectStore, 'destinationPath' | 'serverName'>, walName: string): string {
  return pythonPathJoin(parseDestination(store.destinationPath).path, store.serverName, 'wals', hashDir(walName), walName);
}

/** Python's `urllib.parse.quote_plus` (safe: letters, digits, `_.-~`; space becomes `+`), on UTF-8 bytes. */
function quotePlus(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const ch = String.fromCharCode(byte);
    if (/[A-Za-z0-9_.\-~]/.test(ch)) out += ch;
    else if (ch === ' ') out += '+';
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * The `Tagging` header Barman sends: `urlencode(tags)` over the tags in the order of its command line. pgim's
 * command line (barman.ts) sorts the keys, so the native path sorts them too; undefined means no tagging at all.
 */
export function tagging(store: Pick<BarmanObjectStore, 'tags' | 'historyTags'>, walName: string): string | undefined {
  const sorted = (tags: Readonly<Record<string, string>>): [string, string][] => Object.entries(tags).sort(([a], [b]) => a.localeCompare(b));
  const tags = sorted(store.tags);
  const history = sorted(store.historyTags);
  // cloud_walarchive: `override_tags or self.tags`: an empty historyTags falls back to tags.
  const chosen = isHistoryFile(walName) && history.length > 0 ? history : tags;
  return chosen.length === 0 ? undefined : chosen.map(([k, v]) => `${quotePlus(k)}=${quotePlus(v)}`).join('&');
}

/** s3transfer's defaults, which boto3's upload_fileobj (Barman) uses: what decides PutObject vs multipart. */
export const multipartThreshold = 8 * 1024 * 1024;
export const multipartChunkSize = 8 * 1024 * 1024;

/**
 * Why pgim cannot write this store's WAL objects byte for byte as Barman does (so barman-cloud-wal-archive runs),
 * or undefined when it can. Compressed WAL: Barman compresses with Python's zlib/bz2/snappy, whose bytes Node's
 * own zlib (a different deflate) does not reproduce. Extra Barman arguments: only Barman knows what they mean.
 */
export function nativeWalArchiveUnsupported(store: BarmanObjectStore): string | undefined {
  if (store.wal.compression !== undefined) return `spec.backup.barmanObjectStore.wal.compression (${store.wal.compression})`;
  if (store.wal.archiveAdditionalCommandArgs.length > 0) return 'spec.backup.barmanObjectStore.wal.archiveAdditionalCommandArgs';
  return undefined;
}

/** barman.cloud's ALLOWED_COMPRESSIONS: the extension of a compressed WAL object and its scheme. */
const walCompressions: readonly (readonly [string, WalCompression])[] = [['.gz', 'gzip'], ['.bz2', 'bzip2'], ['.snappy', 'snappy']];
export type WalCompression = 'gzip' | 'bzip2' | 'snappy';

const backupLabelName = /^[0-9A-Fa-f]{24}\.[0-9A-Fa-f]{8}\.backup$/;
const keyBasename = (key: string): string => key.slice(key.lastIndexOf('/') + 1);

/**
 * barman-cloud-wal-restore's `wal_path`: `<path>/<serverName>/wals/<hash_dir>/<walName>`. Every object whose key
 * starts with it is a candidate (the plain segment, `<walName>.partial`, `<walName>.gz`, ...).
 */
export function walObjectPrefix(store: Pick<BarmanObjectStore, 'destinationPath' | 'serverName'>, walName: string): string {
  let dir = pythonPathJoin(parseDestination(store.destinationPath).path, store.serverName, 'wals', hashDir(walName));
  if (!dir.endsWith('/')) dir += '/';
  return pythonPathJoin(dir, walName);
}

/**
 * CloudWalDownloader.download_wal (Barman 3.4), applied to the keys the store lists under the WAL's prefix, in the
 * store's (lexical) order: which object barman-cloud-wal-restore downloads, and how it decompresses it. Undefined:
 * "WAL file does not exist" (exit 1). Faithful to its quirks: the first compressed or `.partial` candidate wins over
 * an exact match listed before it (so `X.partial` is restored for `X` when both exist), `.backup` labels are
 * skipped, and a compression extension seen on a skipped key is still remembered.
 */
export function chooseWalObject(keys: readonly string[], walPrefix: string): { key: string; compression: WalCompression | undefined } | undefined {
  let chosen: string | undefined;
  let compression: WalCompression | undefined;
  for (const key of keys) {
    if (key === walPrefix) {
      chosen = key;
      continue;
    }
    if (!key.startsWith(walPrefix)) continue;
    let base = key;
    for (const [extension, scheme] of walCompressions) {
      if (key.endsWith(extension)) {
        base = key.slice(0, -extension.length);
        compression = scheme;
        break;
      }
    }
    const name = keyBasename(base);
    if (!isAnyXlogFile(name)) continue;
    if (backupLabelName.test(name)) continue;
    chosen = key;
    break;
  }
  return chosen === undefined ? undefined : { key: chosen, compression };
}
