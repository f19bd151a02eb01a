import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { BarmanObjectStore } from '../../src/cluster/backup.js';
import { acquireWalRestoreServer } from '../../src/backup/wal-restore-server.js';
import { restoreCommand } from '../../src/backup/restore-runtime.js';
import { restorePaths, type RestoreSettings } from '../../src/backup/wal-restore-settings.js';
import { eventually, makeTempDir, removeTempDir } from '../../test-kit/env.js';
import { pgimEntry, pgimLaunch, pgimNodeArgs } from '../../test-kit/pgim.js';
import { requireBackupParts, S3Server } from '../../test-kit/s3.js';

const run = promisify(execFile);

/**
 * `pgim wal-restore` downloads WAL itself (s3-wal-fetcher.ts): what plain barman-cloud-wal-archive 3.4 wrote,
 * uncompressed, gzip and bzip2 (the last through Barman, which pgim falls back to), comes back byte for byte, as a
 * one-shot command and through the long-lived server's socket; a `.partial` and a `.history` file as Barman serves
 * them; a missing file is "not there" (exit 1). Over TLS with the endpoint CA.
 */
describe('pgim wal-restore: native download of Barman-archived WAL (versitygw, barman-cloud-wal-archive)', function () {
  this.timeout(600_000);
  let s3: S3Server;
  let base: string;
  let caFile: string;
  const originals = new Map<string, Buffer>();
  const segments = ['000000010000000000000001', '000000010000000000000002', '000000010000000000000003', '000000010000000000000004', '000000010000000000000005'];
  const kinds = { plain: [], gz: ['--gzip'], bz: ['--bzip2'] } as const;

  const store = (serverName: string, maxParallel: number): BarmanObjectStore => ({
    destinationPath: s3.destination('native'), endpointURL: s3.endpointURL, endpointCA: undefined, serverName,
    s3Credentials: { accessKeyId: undefined, secretAccessKey: undefined, region: undefined, sessionToken: undefined, inheritFromIAMRole: false },
    wal: { compression: undefined, encryption: undefined, maxParallel, archiveAdditionalCommandArgs: [], restoreAdditionalCommandArgs: [] },
    data: { compression: undefined, encryption: undefined, jobs: undefined, immediateCheckpoint: false, additionalCommandArgs: [] },
    tags: {}, historyTags: {},
  });

  /** A runtime dir whose wal-restore settings name `serverName`'s archive. */
  const runtimeFor = async (serverName: string, maxParallel = 3): Promise<string> => {
    const runtimeDir = await makeTempDir('wal-restore-runtime');
    const paths = restorePaths(runtimeDir);
    await mkdir(paths.dir, { recursive: true, mode: 0o700 });
    const settings: RestoreSettings = { version: 1, store: store(serverName, maxParallel), env: { AWS_ACCESS_KEY_ID: s3.accessKey, AWS_SECRET_ACCESS_KEY: s3.secretKey, AWS_CA_BUNDLE: caFile }, streamingAvailable: false };
    await writeFile(paths.settings, JSON.stringify(settings), { mode: 0o600 });
    return runtimeDir;
  };

  /** PostgreSQL's call: `pgim wal-restore %f %p` in PGDATA; resolves to the exit code. */
  const walRestore = async (runtimeDir: string, walName: string, destination: string): Promise<number> => {
    try {
      await run(process.execPath, pgimNodeArgs(['wal-restore', '--runtime-dir', runtimeDir, walName, destination]), { env: { ...process.env, ...pgimLaunch.env } });
      return 0;
    } catch (err) {
      return (err as { code?: number }).code ?? -1;
    }
  };

  before(async function () {
    requireBackupParts(this);
    s3 = await S3Server.start({ tls: true });
    base = await makeTempDir('wal-restore-native');
    caFile = join(base, 'ca.crt');
    await writeFile(caFile, s3.caPem ?? '');
    const source = join(base, 'source');
    await mkdir(source);
    // Half random, half compressible: the compressed objects differ in size from the original.
    const content = (): Buffer => Buffer.concat([randomBytes(512 * 1024), Buffer.alloc(512 * 1024, 7)]);
    const files = [...segments, '000000010000000000000007.partial', '00000002.history', '000000010000000000000002.00000028.backup'];
    for (const name of files) {
      const body = name.endsWith('.history') ? Buffer.from('1\t0/3000000\tno recovery target specified\n') : content();
      originals.set(name, body);
      await writeFile(join(source, name), body);
    }
    for (const [serverName, flags] of Object.entries(kinds)) {
      for (const name of files) {
        await run('barman-cloud-wal-archive', ['--endpoint-url', s3.endpointURL, '--cloud-provider', 'aws-s3', ...flags, s3.destination('native'), serverName, join(source, name)], { env: s3.barmanEnv(caFile) });
      }
    }
  });

  after(async () => {
    await (s3 as S3Server | undefined)?.stop();
    if ((base as string | undefined) !== undefined) await removeTempDir(base);
  });

  for (const serverName of Object.keys(kinds)) {
    it(`one-shot command (${serverName}): byte for byte, the next segments read ahead into the spool, .partial and .history as Barman, a missing file exits 1`, async () => {
      const runtimeDir = await runtimeFor(serverName);
      const out = join(base, `out-${serverName}`);
      await mkdir(out, { recursive: true });
      try {
        assert.equal(await walRestore(runtimeDir, segments[0] ?? '', join(out, 'RECOVERYXLOG')), 0);
        assert.ok((await readFile(join(out, 'RECOVERYXLOG'))).equals(originals.get(segments[0] ?? '') ?? Buffer.alloc(0)));
        // maxParallel 3: the two next segments wait in the spool, and the next calls take them from there.
        assert.deepEqual((await readdir(restorePaths(runtimeDir).spool)).sort(), segments.slice(1, 3));
        for (const name of segments.slice(1)) {
          assert.equal(await walRestore(runtimeDir, name, join(out, 'RECOVERYXLOG')), 0, name);
          assert.ok((await readFile(join(out, 'RECOVERYXLOG'))).equals(originals.get(name) ?? Buffer.alloc(0)), `${name} differs`);
        }
        // Only a .partial holds segment 7: Barman restores it under the segment's name.
        assert.equal(await walRestore(runtimeDir, '000000010000000000000007', join(out, 'RECOVERYXLOG')), 0);
        assert.ok((await readFile(join(out, 'RECOVERYXLOG'))).equals(originals.get('000000010000000000000007.partial') ?? Buffer.alloc(0)));
        assert.equal(await walRestore(runtimeDir, '00000002.history', join(out, 'RECOVERYHISTORY')), 0);
        assert.ok((await readFile(join(out, 'RECOVERYHISTORY'))).equals(originals.get('00000002.history') ?? Buffer.alloc(0)));
        await rm(join(out, 'RECOVERYXLOG'), { force: true });
        assert.equal(await walRestore(runtimeDir, '000000010000000000000009', join(out, 'RECOVERYXLOG')), 1);
        assert.equal(await walRestore(runtimeDir, '00000003.history', join(out, 'RECOVERYHISTORY3')), 1);
        await assert.rejects(readFile(join(out, 'RECOVERYXLOG')));
      } finally {
        await removeTempDir(runtimeDir);
      }
    });
  }

  it("restore_command's shell moves read-ahead segments itself (no pgim start); the server sees them go and reads the next ones", async () => {
    const runtimeDir = await runtimeFor('gz', 3);
    const { server, release } = await acquireWalRestoreServer(runtimeDir, () => undefined);
    const pgdata = join(base, 'shell-pgdata');
    await mkdir(join(pgdata, 'pg_wal'), { recursive: true });
    const command = restoreCommand(runtimeDir, [process.execPath, ...pgimLaunch.nodeArgs, pgimEntry]);
    // PostgreSQL's way: %f and %p replaced, `sh -c` in PGDATA.
    const restore = async (walName: string, destination: string): Promise<number> => {
      try {
        await run('sh', ['-c', command.replaceAll('%f', walName).replaceAll('%p', destination)], { cwd: pgdata, env: { ...process.env, ...pgimLaunch.env } });
        return 0;
      } catch (err) {
        return (err as { code?: number }).code ?? -1;
      }
    };
    const spool = restorePaths(runtimeDir).spool;
    const spooled = async (name: string): Promise<true | undefined> => ((await readdir(spool).catch(() => [] as string[])).includes(name) ? true : undefined);
    try {
      assert.ok(!command.includes(s3.secretKey) && !command.includes(s3.accessKey), 'no credential on the command line');
      // The first segment: nothing spooled yet, so pgim is started and asks the server, which reads 2 ahead.
      assert.equal(await restore(segments[0] ?? '', 'pg_wal/RECOVERYXLOG'), 0);
      for (const [i, name] of segments.slice(1).entries()) {
        await eventually(() => spooled(name), 60_000, `${name} read ahead`);
        assert.equal(await restore(name, 'pg_wal/RECOVERYXLOG'), 0, name);
        const file = join(pgdata, 'pg_wal', 'RECOVERYXLOG');
        assert.ok((await readFile(file)).equals(originals.get(name) ?? Buffer.alloc(0)), `${name} differs`);
        assert.equal((await stat(file)).mode & 0o777, 0o600);
        // The shell's move slid the window: the segment two after this one is being read ahead.
        const next = segments[i + 3];
        if (next !== undefined) await eventually(() => spooled(next), 60_000, `${next} read ahead after ${name} was taken`);
      }
      assert.equal(server.restorer.stats.fromShell, segments.length - 1);
      assert.equal(server.restorer.stats.requests, 1, 'pgim started once');
      assert.equal((await stat(spool)).mode & 0o777, 0o700);
      // What is not spooled still goes through pgim, with its meanings: a history file, and "not there".
      assert.equal(await restore('00000002.history', 'pg_wal/RECOVERYHISTORY'), 0);
      assert.ok((await readFile(join(pgdata, 'pg_wal', 'RECOVERYHISTORY'))).equals(originals.get('00000002.history') ?? Buffer.alloc(0)));
      assert.equal(await restore('000000010000000000000009', 'pg_wal/RECOVERYXLOG9'), 1);
      assert.equal(server.restorer.stats.requests, 3);
    } finally {
      release();
      await removeTempDir(runtimeDir);
    }
  });

  it('through the long-lived server: a sliding read-ahead window, gzip decoded by pgim, bzip2 handed to Barman', async () => {
    for (const serverName of ['gz', 'bz']) {
      const runtimeDir = await runtimeFor(serverName, 3);
      const { server, release } = await acquireWalRestoreServer(runtimeDir, () => undefined);
      const out = join(base, `served-${serverName}`);
      await mkdir(out, { recursive: true });
      try {
        for (const name of segments) {
          assert.equal(await walRestore(runtimeDir, name, join(out, 'RECOVERYXLOG')), 0, name);
          assert.ok((await readFile(join(out, 'RECOVERYXLOG'))).equals(originals.get(name) ?? Buffer.alloc(0)), `${serverName}: ${name} differs`);
        }
        assert.equal(await walRestore(runtimeDir, '000000010000000000000009', join(out, 'RECOVERYXLOG9')), 1);
        const stats = server.restorer.stats;
        assert.equal(stats.requests, segments.length + 1);
        // The first segment is downloaded on request; every later one was already in the spool.
        assert.equal(stats.fromSpool, segments.length - 1);
        if (serverName === 'gz') assert.equal(stats.delegated, 0);
        else assert.ok(stats.delegated >= segments.length, `bzip2 goes through barman-cloud-wal-restore (${stats.delegated})`);
      } finally {
        release();
        await removeTempDir(runtimeDir);
      }
    }
  });
});
