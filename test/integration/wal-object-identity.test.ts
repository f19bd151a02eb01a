import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, GetObjectTaggingCommand, HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { pino } from 'pino';
import type { BarmanObjectStore } from '../../src/cluster/backup.js';
import { WalArchiver } from '../../src/backup/wal-archiver.js';
import { archiveCommand } from '../../src/backup/runtime.js';
import { archivePaths, checkEmptyWalArchiveFlag, readArchiveResult } from '../../src/backup/settings.js';
import { eventually, makeTempDir, removeTempDir } from '../../test-kit/env.js';
import { pgimEntry } from '../../test-kit/pgim.js';
import { requireBackupParts, S3Server } from '../../test-kit/s3.js';

const run = promisify(execFile);

/**
 * pgim's own WAL upload writes what barman-cloud-wal-archive 3.4 writes: the same keys (modulo the server name),
 * bytes, ETag, Content-Type, metadata and tags, for a full 16 MiB segment (multipart in boto3), a small one (one
 * PutObject), a `.partial`, a `.backup` label and a `.history` file (historyTags); through the daemon's socket
 * (read-ahead, warm client) and without a daemon (in `pgim wal-archive`'s own process). Over TLS with a test CA
 * (`endpointCA`). A compressed store is handed to Barman (pgim cannot reproduce Python's zlib bytes). The daemon's
 * ready-watch uploads a segment when its `.ready` file appears, before PostgreSQL asks, and archive_command's shell
 * fast path answers from its upload marker.
 */
describe('pgim WAL objects are byte for byte barman-cloud-wal-archive\'s (versitygw over TLS)', function () {
  this.timeout(300_000);
  const cleanup: (() => Promise<unknown>)[] = [];
  let s3: S3Server;
  let client: S3Client;
  let base: string;
  let pgdata: string;
  let caFile: string;
  const path = 'identity/sub';
  // S3 allows letters, digits, spaces and + - = . _ : / @ in tags: each of these is escaped by urlencode.
  const tags = { 'backup env': 'a b+c', owner: 'x=y:z/w@v_1.2-3' };
  const historyTags = { kind: 'history file' };
  const files = [
    ['000000010000000000000001', 16 * 1024 * 1024],
    ['000000010000000A000000FF', 1024 * 1024],
    ['000000010000000000000002.partial', 16 * 1024 * 1024],
    ['000000010000000000000001.00000028.backup', 300],
    ['00000002.history', 42],
  ] as const;

  const store = (compression?: string): BarmanObjectStore => ({
    destinationPath: s3.destination(path),
    endpointURL: s3.endpointURL,
    endpointCA: { name: 'x', key: 'ca.crt' },
    serverName: 'unused',
    s3Credentials: { accessKeyId: { name: 'x', key: 'a' }, secretAccessKey: { name: 'x', key: 's' }, region: undefined, sessionToken: undefined, inheritFromIAMRole: false },
    wal: { compression, encryption: undefined, maxParallel: 3, archiveAdditionalCommandArgs: [], restoreAdditionalCommandArgs: [] },
    data: { compression: undefined, encryption: undefined, jobs: undefined, immediateCheckpoint: false, additionalCommandArgs: [] },
    tags,
    historyTags,
  });
  /** A runtime dir whose settings name `serverName` (what the daemon writes after each reconcile). */
  const runtimeFor = async (serverName: string, compression?: string): Promise<string> => {
    const dir = join(base, `runtime-${serverName}`);
    await mkdir(join(dir, 'wal-archive'), { recursive: true, mode: 0o700 });
    const env = { AWS_ACCESS_KEY_ID: s3.accessKey, AWS_SECRET_ACCESS_KEY: s3.secretKey, AWS_CA_BUNDLE: caFile };
    const settings = { version: 1, clusterName: 'c', podName: 'c-1', archiver: true, store: { ...store(compression), serverName }, env };
    await writeFile(join(dir, 'wal-archive', 'settings.json'), JSON.stringify(settings), { mode: 0o600 });
    return dir;
  };
  const pgimWalArchive = async (runtimeDir: string, walName: string): Promise<void> => {
    await run(process.execPath, [pgimEntry, 'wal-archive', '--runtime-dir', runtimeDir, join('pg_wal', walName)], { cwd: pgdata });
  };
  const objects = async (serverName: string): Promise<Map<string, { body: Buffer; etag: string; contentType: string; metadata: string; tags: string }>> => {
    const prefix = `${path}/${serverName}/`;
    const listed = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }));
    const out = new Map<string, { body: Buffer; etag: string; contentType: string; metadata: string; tags: string }>();
    for (const entry of listed.Contents ?? []) {
      const key = entry.Key ?? '';
      const head = await client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
      const got = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
      const tagSet = await client.send(new GetObjectTaggingCommand({ Bucket: s3.bucket, Key: key }));
      out.set(key.slice(prefix.length), {
        body: Buffer.from(await got.Body!.transformToByteArray()),
        etag: head.ETag ?? '',
        contentType: head.ContentType ?? '',
        metadata: JSON.stringify(head.Metadata ?? {}),
        tags: JSON.stringify((tagSet.TagSet ?? []).map((t) => [t.Key, t.Value]).sort()),
      });
    }
    return out;
  };

  before(async function () {
    requireBackupParts(this);
    s3 = await S3Server.start({ tls: true });
    cleanup.push(() => s3.stop());
    base = await makeTempDir('walid');
    cleanup.push(() => removeTempDir(base));
    caFile = join(base, 'ca.crt');
    await writeFile(caFile, s3.caPem ?? '');
    pgdata = join(base, 'pgdata');
    await mkdir(join(pgdata, 'pg_wal', 'archive_status'), { recursive: true });
    for (const [name, size] of files) await writeFile(join(pgdata, 'pg_wal', name), randomBytes(size));
    const { Agent } = await import('node:https');
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
    client = new S3Client({
      region: 'us-east-1',
      endpoint: s3.endpointURL,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey },
      requestHandler: { httpsAgent: new Agent({ ca: s3.caPem }) },
    });
    cleanup.push(() => {
      client.destroy();
      return Promise.resolve();
    });
  });

  after(async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
  });

  it('writes the same keys, bytes, ETags, content types, metadata and tags, with and without the daemon', async () => {
    const tagArgs = (flag: string, t: Record<string, string>): string[] => [flag, ...Object.entries(t).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k},${v}`)];
    for (const [name] of files) {
      await run('barman-cloud-wal-archive', [...tagArgs('--tags', tags), ...tagArgs('--history-tags', historyTags), '--endpoint-url', s3.endpointURL, '--cloud-provider', 'aws-s3', s3.destination(path), 'barman', join('pg_wal', name)], {
        cwd: pgdata,
        env: s3.barmanEnv(caFile),
      });
    }
    // Without a daemon: `pgim wal-archive` uploads in its own process.
    const direct = await runtimeFor('pgim-direct');
    for (const [name] of files) await pgimWalArchive(direct, name);
    // Through the daemon's socket, with the two ready segments read ahead while the first is asked for.
    const viaDaemon = await runtimeFor('pgim-daemon');
    const archiver = new WalArchiver({ runtimeDir: viaDaemon, pgdata, logger: pino({ level: 'silent' }) });
    await archiver.start();
    try {
      for (const name of ['000000010000000000000001', '000000010000000A000000FF']) await writeFile(join(pgdata, 'pg_wal', 'archive_status', `${name}.ready`), '');
      for (const [name] of files) await pgimWalArchive(viaDaemon, name);
      assert.equal(archiver.stats.requests, files.length, 'every file went through the daemon');
      // Ready segments are uploaded ahead of their ask, then marked done as PostgreSQL's archiver would (or, when
      // the ask came first, answered by that upload).
      const done = (await readdir(join(pgdata, 'pg_wal', 'archive_status'))).filter((f) => f.endsWith('.done'));
      assert.equal(archiver.stats.markedDone, done.length);
      assert.ok(archiver.stats.readAhead + archiver.stats.markedDone >= 1, `a ready segment was uploaded ahead of its ask: ${JSON.stringify(archiver.stats)}`);
    } finally {
      archiver.stop();
      for (const entry of await readdir(join(pgdata, 'pg_wal', 'archive_status'))) await rm(join(pgdata, 'pg_wal', 'archive_status', entry));
    }

    const barman = await objects('barman');
    assert.deepEqual([...barman.keys()].sort(), [
      'wals/0000000100000000/000000010000000000000001',
      'wals/0000000100000000/000000010000000000000001.00000028.backup',
      'wals/0000000100000000/000000010000000000000002.partial',
      'wals/000000010000000A/000000010000000A000000FF',
      'wals/00000002.history',
    ].sort());
    for (const server of ['pgim-direct', 'pgim-daemon']) {
      const mine = await objects(server);
      assert.deepEqual([...mine.keys()].sort(), [...barman.keys()].sort(), `${server}: the same keys`);
      for (const [key, theirs] of barman) {
        const ours = mine.get(key)!;
        assert.ok(ours.body.equals(theirs.body), `${server} ${key}: the same bytes`);
        assert.equal(ours.etag, theirs.etag, `${server} ${key}: the same ETag (multipart from 8 MiB, as boto3)`);
        assert.equal(ours.contentType, theirs.contentType, `${server} ${key}: the same Content-Type`);
        assert.equal(ours.metadata, theirs.metadata, `${server} ${key}: the same metadata`);
        assert.equal(ours.tags, theirs.tags, `${server} ${key}: the same tags`);
      }
    }
    // The bytes are the files' own, and the history file carries historyTags.
    assert.equal(barman.get('wals/00000002.history')?.tags, JSON.stringify([['kind', 'history file']]));
  });

  it('uploads a segment as soon as its .ready file appears, leaves the status file to PostgreSQL, and answers the ask with that upload', async () => {
    const runtimeDir = await runtimeFor('pgim-watch');
    const archiver = new WalArchiver({ runtimeDir, pgdata, logger: pino({ level: 'silent' }) });
    const status = join(pgdata, 'pg_wal', 'archive_status');
    const segment = '000000010000000000000001';
    const key = `wals/0000000100000000/${segment}`;
    const stored = async (): Promise<Buffer | undefined> => (await objects('pgim-watch')).get(key)?.body;
    await archiver.start();
    try {
      // The watch starts with PostgreSQL's first call (PGDATA exists then).
      await pgimWalArchive(runtimeDir, '00000002.history');
      // Not before barman-cloud-check-wal-archive has passed (the flag pgim sets until then).
      await writeFile(join(pgdata, checkEmptyWalArchiveFlag), '');
      await writeFile(join(status, `${segment}.ready`), '');
      await new Promise((resolve) => setTimeout(resolve, 2000));
      assert.equal(await stored(), undefined, 'nothing uploaded while the destination is unchecked');
      await rm(join(pgdata, checkEmptyWalArchiveFlag));
      await rm(join(status, `${segment}.ready`));
      await writeFile(join(status, `${segment}.ready`), '');
      // No ask for it yet: the daemon saw the file appear and uploaded the segment itself.
      const body = await eventually(stored, 60_000, `${key} uploaded before PostgreSQL asked`);
      assert.ok(body.equals(await readFile(join(pgdata, 'pg_wal', segment))), 'the segment\'s bytes');
      await access(join(status, `${segment}.ready`));
      assert.equal(archiver.stats.markedDone, 0, 'PostgreSQL marks it done itself');
      await pgimWalArchive(runtimeDir, segment);
      assert.equal(archiver.stats.requests, 2);
      assert.equal(archiver.stats.readAhead, 1, `the ask was answered by the upload already made: ${JSON.stringify(archiver.stats)}`);
      assert.ok(archiver.stats.watchStarted >= 1);
    } finally {
      archiver.stop();
      for (const entry of await readdir(status)) await rm(join(status, entry));
      await rm(join(pgdata, checkEmptyWalArchiveFlag), { force: true });
    }
  });

  it("answers archive_command from the daemon's upload marker without starting Node, only while it archives there", async () => {
    const runtimeDir = await runtimeFor('pgim-marker');
    const archiver = new WalArchiver({ runtimeDir, pgdata, logger: pino({ level: 'silent' }) });
    const status = join(pgdata, 'pg_wal', 'archive_status');
    const markers = archivePaths(runtimeDir).uploaded;
    /** pgim's archive_command for `walName`, run as PostgreSQL runs it (/bin/sh, in PGDATA, %f and %p replaced). */
    const archiveCommandFor = async (walName: string): Promise<number> => {
      const command = archiveCommand(runtimeDir, [process.execPath, pgimEntry]).replaceAll('%f', walName).replaceAll('%p', join('pg_wal', walName));
      return run('/bin/sh', ['-c', command], { cwd: pgdata }).then(() => 0, (err: unknown) => (err as { code?: number }).code ?? -1);
    };
    const segment = '000000010000000000000001';
    const other = '000000010000000A000000FF';
    await archiver.start();
    try {
      // The first call goes through Node (no marker yet) and starts the ready-watch.
      assert.equal(await archiveCommandFor('00000002.history'), 0);
      assert.equal(archiver.stats.requests, 1);
      await writeFile(join(status, `${segment}.ready`), '');
      await eventually(() => access(join(markers, segment)).then(() => true, () => undefined), 60_000, 'the upload marker');
      const stored = (await objects('pgim-marker')).get(`wals/0000000100000000/${segment}`);
      assert.ok(stored?.body.equals(await readFile(join(pgdata, 'pg_wal', segment))), 'the marker is written once the segment is in the store');
      assert.deepEqual((await readdir(markers)).sort(), [segment], 'no upload under way any more');
      assert.equal((await stat(markers)).mode & 0o777, 0o700);
      // PostgreSQL's call: answered by the shell, no Node, no request to the daemon; the outcome is recorded.
      assert.equal(await archiveCommandFor(segment), 0);
      assert.equal(archiver.stats.requests, 1, `no Node start: ${JSON.stringify(archiver.stats)}`);
      assert.equal((await readArchiveResult(archivePaths(runtimeDir)))?.walName, segment);
      // PostgreSQL marks it done: the marker goes with the .ready file.
      await rename(join(status, `${segment}.ready`), join(status, `${segment}.done`));
      await eventually(() => readdir(markers).then((m) => (m.length === 0 ? true : undefined)), 30_000, 'the marker removed once archived');

      // This instance stops being the archiver (a switchover): no read-ahead, no marker, and the call reaches pgim
      // wal-archive, which refuses.
      const settingsPath = archivePaths(runtimeDir).settings;
      const settings = JSON.parse(await readFile(settingsPath, 'utf8')) as { archiver: boolean };
      await writeFile(settingsPath, JSON.stringify({ ...settings, archiver: false }), { mode: 0o600 });
      await writeFile(join(status, `${other}.ready`), '');
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.deepEqual(await readdir(markers), []);
      assert.equal(await archiveCommandFor(other), 1);
      assert.equal(archiver.stats.requests, 1, 'pgim wal-archive refused by itself');
      assert.match((await readArchiveResult(archivePaths(runtimeDir)))?.error ?? '', /switchover in progress/);
    } finally {
      archiver.stop();
      for (const entry of await readdir(status)) await rm(join(status, entry));
    }
  });

  it('hands a compressed store to barman-cloud-wal-archive (gzip), through the daemon', async () => {
    const runtimeDir = await runtimeFor('pgim-gzip', 'gzip');
    const archiver = new WalArchiver({ runtimeDir, pgdata, logger: pino({ level: 'silent' }) });
    await archiver.start();
    try {
      await pgimWalArchive(runtimeDir, '000000010000000A000000FF');
    } finally {
      archiver.stop();
    }
    const mine = await objects('pgim-gzip');
    const object = mine.get('wals/000000010000000A/000000010000000A000000FF.gz');
    assert.ok(object !== undefined, `a .gz object: ${[...mine.keys()].join(', ')}`);
    const barman = await objects('barman');
    assert.ok(gunzipSync(object.body).equals(barman.get('wals/000000010000000A/000000010000000A000000FF')!.body));
  });
});
