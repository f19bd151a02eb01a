import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdir, readFile, readdir, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { BarmanObjectStore } from '../../src/cluster/backup.js';
import { catalogEntry } from '../../src/backup/backup-info.js';
import { parseBackupList } from '../../src/backup/barman.js';
import { openBackupStore, type BackupStore } from '../../src/backup/s3-backup-restore.js';
import { asPostgres } from '../../test-kit/barman-restore.js';
import { freePort, handToPostgres, makeTempDir, removeTempDir } from '../../test-kit/env.js';
import { requireBackupParts, S3Server } from '../../test-kit/s3.js';

const run = promisify(execFile);
const pgBin = process.env.PGIM_PG_BIN ?? '/usr/lib/postgresql/15/bin';

/**
 * pgim lists and restores base backups itself (s3-backup-restore.ts): for backups written by plain
 * barman-cloud-backup 3.4 (uncompressed, gzip, gzip split into two tars by --max-archive-size, each with a
 * tablespace), pgim's catalog is barman-cloud-backup-list's, and pgim's restore is barman-cloud-restore's file for
 * file (contents, modes, owners, times, symlinks); a bzip2 backup is handed back to Barman untouched; an unknown
 * backup, a folder that is not empty and a missing tar fail as Barman does.
 */
describe('native base backup list and restore (versitygw, barman-cloud-backup, barman-cloud-restore)', function () {
  this.timeout(900_000);
  let s3: S3Server;
  let base: string;
  let pgdata: string;
  let tablespaceDir: string;
  const kinds: Record<string, string[]> = { plain: [], gz: ['--gzip'], parts: ['--gzip', '--max-archive-size', '4MB'] };
  const common = (): string[] => ['--endpoint-url', s3.endpointURL, '--cloud-provider', 'aws-s3'];

  const store = (serverName: string): BarmanObjectStore => ({
    destinationPath: s3.destination('native-base'), endpointURL: s3.endpointURL, endpointCA: undefined, serverName,
    s3Credentials: { accessKeyId: undefined, secretAccessKey: undefined, region: undefined, sessionToken: undefined, inheritFromIAMRole: false },
    wal: { compression: undefined, encryption: undefined, maxParallel: 1, archiveAdditionalCommandArgs: [], restoreAdditionalCommandArgs: [] },
    data: { compression: undefined, encryption: undefined, jobs: undefined, immediateCheckpoint: false, additionalCommandArgs: [] },
    tags: {}, historyTags: {},
  });
  const open = (serverName: string): Promise<BackupStore> => openBackupStore(store(serverName), { AWS_ACCESS_KEY_ID: s3.accessKey, AWS_SECRET_ACCESS_KEY: s3.secretKey });

  /** Every entry under `dir`: type, mode, owner, mtime (s), size and content hash or link target. */
  const tree = async (dir: string): Promise<Map<string, string>> => {
    const out = new Map<string, string>();
    const walk = async (rel: string): Promise<void> => {
      for (const name of (await readdir(join(dir, rel))).sort()) {
        const path = join(dir, rel, name);
        const st = await lstat(path);
        const key = join(rel, name);
        const head = `${(st.mode & 0o170000).toString(8)} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${Math.floor(st.mtimeMs / 1000)}`;
        if (st.isSymbolicLink()) out.set(key, `${head} -> ${await readlink(path)}`);
        else if (st.isDirectory()) {
          out.set(key, head);
          await walk(key);
        } else out.set(key, `${head} ${st.size} ${createHash('sha256').update(await readFile(path)).digest('hex')}`);
      }
    };
    await walk('');
    return out;
  };

  const sql = async (port: number, text: string): Promise<void> => {
    const [cmd, args] = asPostgres(join(pgBin, 'psql'), ['-h', join(base, 'run'), '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-c', text]);
    await run(cmd, args);
  };

  before(async function () {
    requireBackupParts(this);
    s3 = await S3Server.start();
    base = await makeTempDir('native-base');
    pgdata = join(base, 'pgdata');
    tablespaceDir = join(base, 'tbs');
    await mkdir(join(base, 'run'));
    await mkdir(tablespaceDir);
    await handToPostgres(base);
    const port = await freePort();
    const [initdb, initArgs] = asPostgres(join(pgBin, 'initdb'), ['-D', pgdata, '-U', 'postgres', '--auth=trust']);
    await run(initdb, initArgs);
    await writeFile(join(pgdata, 'postgresql.auto.conf'), `port = ${port}\nlisten_addresses = ''\nunix_socket_directories = '${join(base, 'run')}'\n`);
    await handToPostgres(pgdata);
    const [ctl, ctlArgs] = asPostgres(join(pgBin, 'pg_ctl'), ['-D', pgdata, '-l', join(base, 'pg.log'), '-w', 'start']);
    await run(ctl, ctlArgs);
    await sql(port, `CREATE TABLESPACE tbs LOCATION '${tablespaceDir}'`);
    await sql(port, "CREATE TABLE inside (x int, pad text) TABLESPACE tbs; INSERT INTO inside SELECT g, md5(g::text) FROM generate_series(1, 100000) g");
    await sql(port, "CREATE TABLE outside (x int, pad text); INSERT INTO outside SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 60000) g");
    try {
      for (const [serverName, flags] of Object.entries(kinds)) {
        const [cmd, args] = asPostgres('barman-cloud-backup', [...common(), '--host', join(base, 'run'), '--port', String(port), '--user', 'postgres', '--immediate-checkpoint', ...flags, s3.destination('native-base'), serverName]);
        await run(cmd, args, { env: { ...s3.barmanEnv(), TMPDIR: base } });
      }
      // A second backup on one server, bzip2: the catalog lists both, oldest first.
      const [cmd, args] = asPostgres('barman-cloud-backup', [...common(), '--host', join(base, 'run'), '--port', String(port), '--user', 'postgres', '--name', 'second', '--bzip2', s3.destination('native-base'), 'plain']);
      await run(cmd, args, { env: { ...s3.barmanEnv(), TMPDIR: base } });
    } finally {
      const [stop, stopArgs] = asPostgres(join(pgBin, 'pg_ctl'), ['-D', pgdata, '-m', 'fast', '-w', 'stop']);
      await run(stop, stopArgs).catch(() => undefined);
    }
  });

  after(async () => {
    await (s3 as S3Server | undefined)?.stop();
    if ((base as string | undefined) !== undefined) await removeTempDir(base);
  });

  it("lists each server's backups as barman-cloud-backup-list does", async () => {
    for (const serverName of Object.keys(kinds)) {
      const barman = parseBackupList((await run('barman-cloud-backup-list', [...common(), '--format', 'json', s3.destination('native-base'), serverName], { env: s3.barmanEnv() })).stdout);
      const backups = await open(serverName);
      try {
        const mine = await backups.listBackups();
        assert.deepEqual(mine.unreadable, []);
        assert.deepEqual(mine.backups.map(catalogEntry), barman, serverName);
        assert.equal(mine.backups.length, serverName === 'plain' ? 2 : 1);
        assert.ok(mine.backups.every((b) => b.tablespaces.length === 1 && b.tablespaces[0]?.name === 'tbs' && b.tablespaces[0].location === tablespaceDir));
      } finally {
        backups.close();
      }
    }
  });

  for (const serverName of ['plain', 'gz', 'parts']) {
    it(`restores a ${serverName} backup with its tablespace file for file as barman-cloud-restore does`, async () => {
      const backups = await open(serverName);
      const out = join(base, `restore-${serverName}`);
      try {
        const info = (await backups.listBackups()).backups[0];
        assert.ok(info !== undefined);
        const keys = await readdir(join(s3.bucketDir, 'native-base', serverName, 'base', info.backupId));
        if (serverName === 'parts') assert.ok(keys.filter((k) => /^data_\d{4}\.tar\.gz$/.test(k)).length >= 1, `several parts: ${keys.join(', ')}`);
        // A folder Barman's restore itself touched after its tar set its time (pg_tblspc gets the links; one
        // written by two parts of a split backup) has the time of the restore: compared without it.
        const restoreStarted = Math.floor(Date.now() / 1000);
        await run('barman-cloud-restore', [...common(), s3.destination('native-base'), serverName, info.backupId, join(out, 'barman', 'pgdata'), '--tablespace', `tbs:${join(out, 'barman', 'tbs')}`], { env: s3.barmanEnv() });
        let reported = 0;
        const result = await backups.restore(info, join(out, 'pgim', 'pgdata'), { tablespaces: { tbs: join(out, 'pgim', 'tbs') }, progress: ({ bytes }) => (reported = bytes) });
        assert.equal(result, 'restored');
        assert.ok(reported > 20 * 1024 * 1024, `progress reported ${reported} bytes`);
        for (const part of ['pgdata', 'tbs']) {
          const barman = await tree(join(out, 'barman', part));
          const pgim = await tree(join(out, 'pgim', part));
          const oid = info.tablespaces[0]?.oid ?? 0;
          // The tablespace links point at each restore's own folder.
          if (part === 'pgdata') {
            assert.ok(barman.get(`pg_tblspc/${oid}`)?.endsWith(`-> ${join(out, 'barman', 'tbs')}`), barman.get(`pg_tblspc/${oid}`));
            assert.ok(pgim.get(`pg_tblspc/${oid}`)?.endsWith(`-> ${join(out, 'pgim', 'tbs')}`), pgim.get(`pg_tblspc/${oid}`));
            barman.delete(`pg_tblspc/${oid}`);
            pgim.delete(`pg_tblspc/${oid}`);
          }
          assert.ok(barman.size > (part === 'pgdata' ? 500 : 3), `${part}: ${barman.size} entries`);
          const timeless = (v: string | undefined): string | undefined => v?.replace(/^(40000 \d+ \d+:\d+) (\d+)$/, (all, head: string, time: string) => (Number(time) >= restoreStarted ? `${head} (restore time)` : all));
          const differ = [...new Set([...barman.keys(), ...pgim.keys()])].filter((k) => timeless(barman.get(k)) !== timeless(pgim.get(k)));
          assert.deepEqual(differ.map((k) => `${k}: ${pgim.get(k) ?? 'missing'} (Barman: ${barman.get(k) ?? 'missing'})`), [], `${serverName} ${part}`);
        }
      } finally {
        backups.close();
        await removeTempDir(out);
      }
    });
  }

  it('hands a bzip2 backup back to barman-cloud-restore, writing nothing', async () => {
    const backups = await open('plain');
    const out = join(base, 'restore-bz');
    try {
      const info = (await backups.listBackups()).backups[1];
      assert.ok(info !== undefined);
      assert.deepEqual(await backups.restore(info, out), { delegate: 'bzip2' });
      assert.deepEqual(await readdir(out).catch(() => []), []);
    } finally {
      backups.close();
      await removeTempDir(out);
    }
  });

  it("fails as Barman does: an unknown backup, a folder that is not empty, a missing tar; a missing bucket and refused credentials are told apart; checks a WAL archive is empty", async () => {
    const backups = await open('gz');
    const out = join(base, 'restore-errors');
    try {
      assert.equal(await backups.backupInfo('20000101T000000'), undefined);
      const info = (await backups.listBackups()).backups[0];
      assert.ok(info !== undefined);
      await mkdir(out, { recursive: true });
      await writeFile(join(out, 'PG_VERSION'), '15\n');
      await assert.rejects(backups.restore(info, out), /Destination .* already exists and it is not empty/);
      const ghost = { ...info, tablespaces: [...info.tablespaces, { name: 'ghost', oid: 99999, location: join(base, 'ghost') }] };
      await assert.rejects(backups.restore(ghost, join(base, 'restore-ghost')), /Missing file .*\/99999\.\* for server/);
      assert.deepEqual(await readdir(join(base, 'restore-ghost')).catch(() => []), []);
    } finally {
      backups.close();
      await removeTempDir(out);
    }
    // barman-cloud-check-wal-archive's question: no WAL under wals/ (a missing bucket passes), here one gzip segment.
    const walCheck = await open('gz');
    try {
      assert.equal(await walCheck.walArchiveEmpty(), true);
      const wal = join(base, '000000010000000000000001');
      await writeFile(wal, Buffer.alloc(16 * 1024 * 1024, 1));
      await run('barman-cloud-wal-archive', [...common(), '--gzip', s3.destination('native-base'), 'gz', wal], { env: s3.barmanEnv() });
      assert.equal(await walCheck.walArchiveEmpty(), false);
    } finally {
      walCheck.close();
    }
    const refused = await openBackupStore(store('gz'), { AWS_ACCESS_KEY_ID: s3.accessKey, AWS_SECRET_ACCESS_KEY: 'not-the-secret' });
    try {
      await assert.rejects(refused.listBackups(), (err: Error) => /HTTP 403.*credentials were refused/.test(err.message) && !err.message.includes('not-the-secret'));
    } finally {
      refused.close();
    }
    const noBucket = await openBackupStore({ ...store('gz'), destinationPath: 's3://no-such-bucket/x' }, { AWS_ACCESS_KEY_ID: s3.accessKey, AWS_SECRET_ACCESS_KEY: s3.secretKey });
    try {
      await assert.rejects(noBucket.listBackups(), /the bucket no-such-bucket does not exist/);
      assert.equal(await noBucket.walArchiveEmpty(), true);
    } finally {
      noBucket.close();
    }
  });
});
