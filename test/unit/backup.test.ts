import { strict as assert } from 'node:assert';
import { pino } from 'pino';
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { electBackupPod, backupStatusFields } from '../../src/backup/backup-objects.js';
import { backupArgs, backupDeleteArgs, checkWalArchiveArgs, parseBackupList, parseBarmanTime, recoverabilityTimes, walArchiveArgs } from '../../src/backup/barman.js';
import { barmanRetentionPolicy } from '../../src/cluster/backup.js';
import { resolveStoreCredentials } from '../../src/backup/credentials.js';
import { archiveCommand } from '../../src/backup/runtime.js';
import { archivePaths, checkEmptyWalArchiveFlag } from '../../src/backup/settings.js';
import { archivingCondition, BackupService, defaultBackupName } from '../../src/backup/service.js';
import { gatherReadyWalFiles } from '../../src/backup/wal-archive.js';
import { BackupScheduler, cronFor, parseScheduledBackup, scheduledBackupName } from '../../src/backup/scheduled-backups.js';
import { hashDir, nativeWalArchiveUnsupported, pythonPathJoin, tagging, walObjectKey } from '../../src/backup/wal-object.js';
import { parseClusterManifest } from '../../src/cluster/parse.js';
import { FilesControlPlane } from '../../src/controlplane/files.js';
import { ConfigError } from '../../src/errors/index.js';
import { makeTempDir, removeTempDir } from '../../test-kit/env.js';

function manifest(backup: unknown): string {
  return stringify({ apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', metadata: { name: 'pg' }, spec: { instances: 1, backup } });
}

const store = {
  destinationPath: 's3://bucket/path',
  endpointURL: 'https://127.0.0.1:9000',
  s3Credentials: { accessKeyId: { name: 'creds', key: 'ID' }, secretAccessKey: { name: 'creds', key: 'KEY' } },
};

function problem(backup: unknown): string {
  try {
    parseClusterManifest(manifest(backup), 'f.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  return assert.fail('expected a ConfigError');
}

describe('spec.backup (CNPG names and defaults)', () => {
  it('resolves CNPG defaults: serverName = the Cluster name, maxParallel 1, target prefer-standby', () => {
    const c = parseClusterManifest(manifest({ barmanObjectStore: store }), 'f.yaml');
    const s = c.backup.barmanObjectStore;
    assert.equal(s?.serverName, 'pg');
    assert.equal(s.wal.maxParallel, 1);
    assert.equal(s.data.immediateCheckpoint, false);
    assert.equal(c.backup.target, 'prefer-standby');
    assert.equal(c.backup.retentionPolicy, undefined);
    assert.equal(parseClusterManifest(manifest(undefined), 'f.yaml').backup.barmanObjectStore, undefined);
  });

  it('refuses what pgim or barman-cli-cloud 3.4 cannot do, naming the field', () => {
    assert.match(problem({ barmanObjectStore: { ...store, wal: { compression: 'zstd' } } }), /spec\.backup\.barmanObjectStore\.wal\.compression: must be gzip, bzip2 or snappy/);
    assert.match(problem({ barmanObjectStore: { ...store, azureCredentials: { storageAccount: { name: 'a', key: 'b' } } } }), /azureCredentials: is not implemented by pgim/);
    assert.match(problem({ barmanObjectStore: { ...store, destinationPath: 'gs://x' } }), /destinationPath: must be an s3:\/\/ URL/);
    assert.match(problem({ barmanObjectStore: { destinationPath: 's3://b' } }), /s3Credentials: no credentials defined/);
    assert.match(problem({ barmanObjectStore: store, retentionPolicy: '30 days' }), /retentionPolicy: must be a number followed by d, w or m/);
    assert.match(problem({ barmanObjectStore: store, target: 'standby' }), /target: must be primary or prefer-standby/);
    assert.match(problem({ barmanObjectStore: { ...store, wal: { maxParallel: 0 } } }), /maxParallel: must be at least 1/);
  });

  it("maps retentionPolicy as CNPG's ParsePolicy does", () => {
    assert.equal(barmanRetentionPolicy('30d'), 'RECOVERY WINDOW OF 30 DAYS');
    assert.equal(barmanRetentionPolicy('2w'), 'RECOVERY WINDOW OF 2 WEEKS');
    assert.equal(barmanRetentionPolicy('6m'), 'RECOVERY WINDOW OF 6 MONTHS');
  });
});

describe('barman-cloud command lines', () => {
  const resolved = parseClusterManifest(
    manifest({
      barmanObjectStore: {
        ...store,
        tags: { b: '2', a: '1' },
        historyTags: { h: 'x' },
        wal: { compression: 'gzip', maxParallel: 4, archiveAdditionalCommandArgs: ['--gzip', '--read-timeout=60', '=bad'] },
        data: { compression: 'bzip2', jobs: 2, immediateCheckpoint: true },
      },
    }),
    'f.yaml',
  ).backup.barmanObjectStore;
  assert.ok(resolved);

  it("builds barman-cloud-wal-archive's in CNPG's order, extra args deduplicated, no credential anywhere", () => {
    assert.deepEqual(walArchiveArgs(resolved, 'pg_wal/000000010000000000000001'), [
      '--gzip', '--read-timeout=60', '--endpoint-url', 'https://127.0.0.1:9000', '--tags', 'a,1', 'b,2', '--history-tags', 'h,x',
      '--cloud-provider', 'aws-s3', 's3://bucket/path', 'pg', 'pg_wal/000000010000000000000001',
    ]);
    assert.deepEqual(checkWalArchiveArgs(resolved), ['--endpoint-url', 'https://127.0.0.1:9000', '--cloud-provider', 'aws-s3', 's3://bucket/path', 'pg']);
  });

  it('builds barman-cloud-backup and barman-cloud-backup-delete', () => {
    assert.deepEqual(backupArgs(resolved, 'backup-1', { host: '/run', port: 5432, user: 'postgres' }), [
      '--user', 'postgres', '--host', '/run', '--port', '5432', '--name', 'backup-1', '--bzip2', '--immediate-checkpoint', '--jobs', '2',
      '--tags', 'a,1', 'b,2', '--endpoint-url', 'https://127.0.0.1:9000', '--cloud-provider', 'aws-s3', 's3://bucket/path', 'pg',
    ]);
    assert.deepEqual(backupDeleteArgs(resolved, 'RECOVERY WINDOW OF 7 DAYS').slice(-4), ['--retention-policy', 'RECOVERY WINDOW OF 7 DAYS', 's3://bucket/path', 'pg']);
  });

  it("parses barman-cloud-backup-list's JSON (3.4's time format) and computes the recoverability times", () => {
    const list = parseBackupList(JSON.stringify({
      backups_list: [
        { backup_id: '20261205T020000', backup_name: 'b', status: 'DONE', begin_time: 'Sat Dec  5 02:00:00 2026', end_time: 'Sat Dec  5 02:01:00 2026', begin_wal: '000000010000000000000004', end_xlog: '0/5000100' },
        { backup_id: '20261205T010000', backup_name: 'a', status: 'DONE', begin_time: '2026-12-05 01:00:00.123+00:00', end_time: '2026-12-05 01:02:00+00:00' },
        { backup_id: '20261205T030000', status: 'FAILED', begin_time: '2026-12-05 03:00:00+00:00' },
      ],
    }));
    assert.deepEqual(list.map((e) => e.backupId), ['20261205T010000', '20261205T020000', '20261205T030000']);
    assert.equal(list[1]?.endLSN, '0/5000100');
    const times = recoverabilityTimes(list);
    assert.equal(times.firstRecoverabilityPoint?.toISOString(), '2026-12-05T01:02:00.000Z');
    assert.equal(times.lastSuccessfulBackup?.toISOString(), '2026-12-05T02:01:00.000Z');
    assert.equal(parseBarmanTime('not a time'), undefined);
  });
});

describe('archiving and backup helpers', () => {
  it('quotes the archive_command words for /bin/sh and ends with pgim wal-archive %p', () => {
    assert.match(archiveCommand('/controller', ['/usr/bin/node', '/opt/pgim/pgim.js']), /; exec \/usr\/bin\/node \/opt\/pgim\/pgim\.js wal-archive --runtime-dir \/controller %p$/);
    const quoted = archiveCommand("/tmp/it's here", ['node', 'p.js']);
    assert.ok(quoted.startsWith("f=%f d='/tmp/it'\\''s here/wal-archive/uploaded' n=0; "), quoted);
    assert.ok(quoted.endsWith("; exec node p.js wal-archive --runtime-dir '/tmp/it'\\''s here' %p"), quoted);
  });

  describe("archive_command's shell fast path (run by /bin/sh in PGDATA, as PostgreSQL runs it)", () => {
    let dir: string;
    let pgdata: string;
    let runtimeDir: string;
    let uploaded: string;
    const segment = '000000010000000000000007';
    /** Runs the command as PostgreSQL would for `segment`; `node` stands in for pgim wal-archive (exit 3, records its call). */
    const archive = async (env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; nodeRan: boolean }> => {
      const calls = join(dir, 'node-calls');
      await rm(calls, { force: true });
      const command = archiveCommand(runtimeDir, ['/bin/sh', join(dir, 'node.sh')]).replaceAll('%f', segment).replaceAll('%p', `pg_wal/${segment}`);
      const code = await new Promise<number>((resolve) => {
        execFile('/bin/sh', ['-c', command], { cwd: pgdata, env }, (err) => {
          resolve(err === null ? 0 : Number((err as { code?: number }).code));
        });
      });
      return { code, nodeRan: await readFile(calls, 'utf8').then((t) => t.includes(`wal-archive --runtime-dir ${runtimeDir} pg_wal/${segment}`), () => false) };
    };

    before(async () => {
      dir = await makeTempDir('fastpath');
      pgdata = join(dir, 'pgdata');
      runtimeDir = join(dir, 'run');
      uploaded = archivePaths(runtimeDir).uploaded;
      await mkdir(join(pgdata, 'pg_wal'), { recursive: true });
      await mkdir(uploaded, { recursive: true });
      await mkdir(dirname(archivePaths(runtimeDir).socket), { recursive: true });
      await writeFile(join(dir, 'node.sh'), `echo "$@" > ${join(dir, 'node-calls')}\nexit 3\n`);
    });
    after(() => removeTempDir(dir));
    afterEach(async () => {
      for (const f of [join(uploaded, segment), join(uploaded, `${segment}.uploading`), join(pgdata, checkEmptyWalArchiveFlag)]) await rm(f, { force: true });
    });

    it('runs pgim wal-archive (its exit code is the answer) when the daemon has no marker for the segment', async () => {
      assert.deepEqual(await archive(), { code: 3, nodeRan: true });
    });

    it('exits 0 without starting Node when the daemon recorded the segment as uploaded', async () => {
      await writeFile(join(uploaded, segment), '');
      assert.deepEqual(await archive(), { code: 0, nodeRan: false });
      // Another segment's marker answers nothing for this one.
      await rm(join(uploaded, segment));
      await writeFile(join(uploaded, '000000010000000000000008'), '');
      assert.deepEqual(await archive(), { code: 3, nodeRan: true });
    });

    it('leaves the empty-archive check to pgim wal-archive even with a marker', async () => {
      await writeFile(join(uploaded, segment), '');
      await writeFile(join(pgdata, checkEmptyWalArchiveFlag), '');
      assert.deepEqual(await archive(), { code: 3, nodeRan: true });
    });

    it('waits while the upload is under way, then answers from its outcome', async () => {
      await writeFile(join(uploaded, `${segment}.uploading`), '');
      // The daemon's order: the marker, then the in-flight file goes.
      const uploadEnds = new Promise<void>((resolve) => setTimeout(() => {
        void writeFile(join(uploaded, segment), '').then(() => rm(join(uploaded, `${segment}.uploading`))).then(resolve);
      }, 300));
      assert.deepEqual(await archive(), { code: 0, nodeRan: false });
      await uploadEnds;
      // A failed upload: the in-flight file goes with no marker, and pgim wal-archive runs (and reports the failure).
      await rm(join(uploaded, segment));
      await writeFile(join(uploaded, `${segment}.uploading`), '');
      setTimeout(() => void rm(join(uploaded, `${segment}.uploading`)), 300);
      assert.deepEqual(await archive(), { code: 3, nodeRan: true });
    });

    it('gives a listening daemon a moment to take a new segment up (its ready-watch and PostgreSQL race)', async () => {
      const socket = createServer();
      await new Promise<void>((resolve) => socket.listen(archivePaths(runtimeDir).socket, resolve));
      try {
        // The daemon takes the segment up while the shell waits its first poll (a `sleep` that does what the daemon
        // would meanwhile): answered from the marker.
        const bin = join(dir, 'bin');
        await mkdir(bin, { recursive: true });
        await writeFile(join(bin, 'sleep'), `#!/bin/sh\n: > ${join(uploaded, segment)}\nexec /bin/sleep "$@"\n`, { mode: 0o755 });
        assert.deepEqual(await archive({ PATH: `${bin}:${process.env.PATH ?? ''}` }), { code: 0, nodeRan: false });
        // Nothing taken up (the daemon does not archive this one): pgim wal-archive after the moment.
        await rm(join(uploaded, segment));
        assert.deepEqual(await archive(), { code: 3, nodeRan: true });
      } finally {
        await new Promise((resolve) => socket.close(resolve));
      }
    });

    it('stops waiting for an upload that never ends (a daemon killed mid-upload) and runs pgim wal-archive', async () => {
      await writeFile(join(uploaded, `${segment}.uploading`), '');
      assert.deepEqual(await archive(), { code: 3, nodeRan: true });
    });
  });

  it('gathers the next ready segments in order, skipping the requested one (CNPG GatherReadyWALFiles)', async () => {
    const dir = await makeTempDir('ready');
    try {
      const status = join(dir, 'pg_wal', 'archive_status');
      await mkdir(status, { recursive: true });
      for (const name of ['000000010000000000000003.ready', '000000010000000000000001.done', '000000010000000000000002.ready', '000000010000000000000004.ready', '00000002.history.ready']) {
        await writeFile(join(status, name), '');
      }
      assert.deepEqual(await gatherReadyWalFiles(dir, '000000010000000000000002', 2), ['pg_wal/000000010000000000000003', 'pg_wal/000000010000000000000004']);
      assert.deepEqual(await gatherReadyWalFiles(dir, 'x', 0), []);
    } finally {
      await removeTempDir(dir);
    }
  });

  it('reads credentials from the Secret and refuses a bad one naming the Secret and key, never the value', async () => {
    const dir = await makeTempDir('creds');
    try {
      await mkdir(join(dir, 'secrets', 'creds'), { recursive: true });
      await writeFile(join(dir, 'secrets', 'creds', 'ID'), 'AKIDSENTINEL\n');
      await writeFile(join(dir, 'secrets', 'creds', 'KEY'), 'SECRET-SENTINEL');
      const plane = new FilesControlPlane(dir);
      const resolved = parseClusterManifest(manifest({ barmanObjectStore: store }), 'f.yaml').backup.barmanObjectStore;
      assert.ok(resolved);
      assert.deepEqual((await resolveStoreCredentials(plane, resolved)).env, { AWS_ACCESS_KEY_ID: 'AKIDSENTINEL', AWS_SECRET_ACCESS_KEY: 'SECRET-SENTINEL' });
      await writeFile(join(dir, 'secrets', 'creds', 'KEY'), 'SECRET\nSENTINEL');
      await assert.rejects(resolveStoreCredentials(plane, resolved), (err: Error) => err.message === 'secret creds: KEY: contains a line break or NUL' && !err.message.includes('SENTINEL'));
      await writeFile(join(dir, 'secrets', 'creds', 'KEY'), 'SECRET-SENTINEL');
      const withCa = { ...resolved, endpointCA: { name: 'creds', key: 'ca.crt' } };
      await assert.rejects(resolveStoreCredentials(plane, withCa), /secret creds: ca.crt: key is missing \(named by spec.backup.barmanObjectStore.endpointCA\)/);
    } finally {
      await removeTempDir(dir);
    }
  });

  it('names backups as CNPG does, and maps archive results to the ContinuousArchiving condition', () => {
    assert.equal(defaultBackupName(new Date('2026-12-05T01:02:03Z')), 'backup-20261205010203');
    assert.equal(archivingCondition({ at: '', walName: 'x', error: '' }).reason, 'ContinuousArchivingSuccess');
    const failing = archivingCondition({ at: '', walName: 'x', error: 'boom' });
    assert.deepEqual([failing.status, failing.reason, failing.message], ['False', 'ContinuousArchivingFailing', 'boom']);
  });

  it('elects the backup pod as CNPG does and maps a run to Backup status fields', () => {
    const topology = { primary: 'pg-1', instances: ['pg-1', 'pg-3', 'pg-2'] };
    const backup = (spec: Record<string, unknown>, status: Record<string, unknown> = {}): Parameters<typeof electBackupPod>[0] => ({ name: 'b', creationTimestamp: '', spec, status });
    assert.equal(electBackupPod(backup({}), 'prefer-standby', topology), 'pg-2');
    assert.equal(electBackupPod(backup({ target: 'primary' }), 'prefer-standby', topology), 'pg-1');
    assert.equal(electBackupPod(backup({}), 'primary', topology), 'pg-1');
    assert.equal(electBackupPod(backup({}), 'prefer-standby', { primary: 'pg-1', instances: ['pg-1'] }), 'pg-1');
    assert.equal(electBackupPod(backup({}, { instanceID: { podName: 'pg-3' } }), 'primary', topology), 'pg-3');
    const fields = backupStatusFields({ backupName: 'b', phase: 'completed', backupId: 'id', destinationPath: 's3://x', serverName: 'pg', instanceID: { podName: 'pg-1', sessionID: 's' } });
    assert.equal(fields.phase, 'completed');
    assert.equal(fields.error, null);
    assert.ok(typeof fields.reconciliationTerminatedAt === 'string');
    // The store's credential references (never a value), as CNPG's Backup status records them for a recovery.
    const own = parseClusterManifest(manifest({ barmanObjectStore: { ...store, endpointCA: { name: 'ca', key: 'ca.crt' } } }), 'f.yaml').backup.barmanObjectStore;
    const withStore = backupStatusFields({ backupName: 'b', phase: 'completed', destinationPath: 's3://x', serverName: 'pg', instanceID: { podName: 'pg-1', sessionID: 's' } }, own);
    assert.deepEqual(withStore.s3Credentials, { accessKeyId: { name: 'creds', key: 'ID' }, secretAccessKey: { name: 'creds', key: 'KEY' } });
    assert.deepEqual(withStore.endpointCA, { name: 'ca', key: 'ca.crt' });
  });
});

describe("WAL object layout (barman-cloud-wal-archive 3.4's keys and tags)", () => {
  const s = { destinationPath: 's3://bucket/some/path', serverName: 'pg', tags: { b: 'x y', a: '1+2' }, historyTags: {} };
  it('puts segments under <path>/<server>/wals/<timeline+log>/ and history files under wals/', () => {
    assert.equal(walObjectKey(s, '000000010000000A000000FF'), 'some/path/pg/wals/000000010000000A/000000010000000A000000FF');
    assert.equal(walObjectKey(s, '000000020000000000000003.partial'), 'some/path/pg/wals/0000000200000000/000000020000000000000003.partial');
    assert.equal(walObjectKey(s, '000000010000000000000001.00000028.backup'), 'some/path/pg/wals/0000000100000000/000000010000000000000001.00000028.backup');
    assert.equal(walObjectKey(s, '00000002.history'), 'some/path/pg/wals/00000002.history');
    // Python's os.path.join: no path, or a path ending in '/', adds no separator of its own.
    assert.equal(walObjectKey({ ...s, destinationPath: 's3://bucket' }, '00000002.history'), 'pg/wals/00000002.history');
    assert.equal(walObjectKey({ ...s, destinationPath: 's3://bucket/p/' }, '00000002.history'), 'p/pg/wals/00000002.history');
    // Lowercase hex names are Barman's too; hash_dir prints them uppercase.
    assert.equal(hashDir('00000001000000ab000000ff'), '00000001000000AB');
    assert.throws(() => walObjectKey(s, 'notawal'), /invalid name for a WAL file/);
    assert.equal(pythonPathJoin('a', '/b', 'c'), '/b/c');
  });
  it("encodes tags as Python's urlencode, and uses historyTags for history files when set", () => {
    assert.equal(tagging(s, '000000010000000A000000FF'), 'a=1%2B2&b=x+y');
    assert.equal(tagging(s, '00000002.history'), 'a=1%2B2&b=x+y', 'an empty historyTags falls back to tags');
    assert.equal(tagging({ ...s, historyTags: { k: 'a/b:c@d~e' } }, '00000002.history'), 'k=a%2Fb%3Ac%40d~e');
    assert.equal(tagging({ ...s, tags: {} }, '000000010000000A000000FF'), undefined);
  });
  it('writes WAL itself only when the bytes can be Barman\'s (no compression, no extra Barman arguments)', () => {
    const parsed = parseClusterManifest(manifest({ barmanObjectStore: store }), 'f.yaml').backup.barmanObjectStore!;
    assert.equal(nativeWalArchiveUnsupported(parsed), undefined);
    assert.match(nativeWalArchiveUnsupported({ ...parsed, wal: { ...parsed.wal, compression: 'gzip' } }) ?? '', /wal\.compression/);
    assert.match(nativeWalArchiveUnsupported({ ...parsed, wal: { ...parsed.wal, archiveAdditionalCommandArgs: ['--read-timeout=60'] } }) ?? '', /archiveAdditionalCommandArgs/);
  });
});

describe('files-mode ScheduledBackup (CNPG manifests, croner)', () => {
  const manifestText = (spec: Record<string, unknown>, name = 'nightly'): string =>
    stringify({ apiVersion: 'postgresql.cnpg.io/v1', kind: 'ScheduledBackup', metadata: { name }, spec: { cluster: { name: 'pg' }, ...spec } });
  const refusal = (spec: Record<string, unknown>): string => {
    try {
      parseScheduledBackup(manifestText(spec), 'sb.yaml', 'pg');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.message;
    }
    return '';
  };

  it("reads CNPG's fields with their defaults", () => {
    assert.deepEqual(parseScheduledBackup(manifestText({ schedule: '0 0 3 * * *' }), 'sb.yaml', 'pg'), {
      name: 'nightly', source: 'sb.yaml', schedule: '0 0 3 * * *', immediate: false, suspend: false, target: undefined,
    });
    const full = parseScheduledBackup(manifestText({ schedule: '@daily', immediate: true, suspend: true, target: 'primary', method: 'barmanObjectStore', backupOwnerReference: 'self', online: true }), 'sb.yaml', 'pg');
    assert.equal(full.immediate && full.suspend && full.target === 'primary', true);
  });

  it('refuses what files mode cannot honour, naming the field', () => {
    assert.match(refusal({ schedule: '0 3 * * *' }), /spec\.schedule.*6 fields/);
    assert.match(refusal({ schedule: '@every 1h' }), /spec\.schedule/);
    assert.match(refusal({ schedule: '0 0 25 * * *' }), /spec\.schedule/);
    assert.match(refusal({ schedule: '0 0 3 * * *', method: 'volumeSnapshot' }), /spec\.method.*not implemented/);
    assert.match(refusal({ schedule: '0 0 3 * * *', method: 'plugin' }), /spec\.method/);
    assert.match(refusal({ schedule: '0 0 3 * * *', online: false }), /spec\.online/);
    assert.match(refusal({ schedule: '0 0 3 * * *', pluginConfiguration: { name: 'x' } }), /spec\.pluginConfiguration/);
    assert.match(refusal({ schedule: '0 0 3 * * *', onlineConfiguration: { immediateCheckpoint: true } }), /spec\.onlineConfiguration/);
    assert.match(refusal({ schedule: '0 0 3 * * *', cluster: { name: 'other' } }), /spec\.cluster\.name.*"other"/);
    assert.match(refusal({ schedule: '0 0 3 * * *', unknownField: 1 }), /spec/);
  });

  it('schedules with seconds first, in UTC, and names backups <name>-<YYYYMMDDhhmmss>', () => {
    const cron = cronFor('30 15 3 * * *');
    assert.equal(cron.nextRun(new Date('2026-12-05T01:00:00Z'))?.toISOString(), '2026-12-05T03:15:30.000Z');
    cron.stop();
    assert.equal(scheduledBackupName('nightly', new Date('2026-12-05T03:15:30.123Z')), 'nightly-20261205031530');
  });

  it('takes the backup only on the instance the target elects (prefer-standby: the first replica by name)', async () => {
    const taken: string[] = [];
    const service = { store: {} as never, takeBackup: (name: string) => { taken.push(name); return Promise.resolve({ phase: 'completed' } as never); } };
    const scheduled = parseScheduledBackup(manifestText({ schedule: '0 0 3 * * *' }), 'sb.yaml', 'pg');
    const topology = { scheduled: [scheduled], clusterTarget: 'prefer-standby', primary: 'pg-1', instances: ['pg-1', 'pg-2', 'pg-3'] };
    const silent = pino({ level: 'silent' });
    const now = (): Date => new Date('2026-12-05T03:00:00Z');
    assert.equal(await new BackupScheduler({ desired: () => ({ ...topology, self: 'pg-1' }), service, logger: silent, now }).tick(scheduled, 'schedule'), undefined);
    assert.equal(await new BackupScheduler({ desired: () => ({ ...topology, self: 'pg-2' }), service, logger: silent, now }).tick(scheduled, 'schedule'), 'nightly-20261205030000');
    const onPrimary = { ...scheduled, target: 'primary' as const };
    assert.equal(await new BackupScheduler({ desired: () => ({ ...topology, self: 'pg-1' }), service, logger: silent, now }).tick(onPrimary, 'schedule'), 'nightly-20261205030000');
    assert.deepEqual(taken, ['nightly-20261205030000', 'nightly-20261205030000']);
  });

  it('with no schedule keeps no timer; a schedule in a new desired state is armed at wake(), and removed the same way', () => {
    const service = { store: {} as never, takeBackup: () => Promise.resolve({ phase: 'completed' } as never) };
    const scheduled = parseScheduledBackup(manifestText({ schedule: '0 0 3 * * *' }), 'sb.yaml', 'pg');
    let current: (typeof scheduled)[] = [];
    const scheduler = new BackupScheduler({
      desired: () => ({ scheduled: current, clusterTarget: 'primary', self: 'pg-1', primary: 'pg-1', instances: ['pg-1'] }),
      service,
      logger: pino({ level: 'silent' }),
    });
    scheduler.start(60_000);
    try {
      assert.deepEqual(scheduler.nextRuns(), {});
      current = [scheduled];
      scheduler.wake();
      assert.deepEqual(Object.keys(scheduler.nextRuns()), ['nightly'], 'armed at once, not at the next re-sync');
      current = [];
      scheduler.wake();
      assert.deepEqual(scheduler.nextRuns(), {});
    } finally {
      scheduler.stop();
    }
  });
});

describe('BackupService: following archive results', () => {
  it('arms its inotify watch once the wal-archive folder appears (a first start creates it later)', async function () {
    this.timeout(30_000);
    const runtimeDir = await makeTempDir('backup-service');
    const service = new BackupService({
      desired: () => ({ cluster: parseClusterManifest(manifest(undefined), 'f.yaml'), backup: {} as never, isPrimary: true }),
      controlPlane: new FilesControlPlane(runtimeDir),
      logger: pino({ level: 'silent' }),
      runtimeDir,
      tmpDir: join(runtimeDir, 'tmp'),
      pgdata: join(runtimeDir, 'pgdata'),
      connection: {} as never,
      podName: 'pg-1',
      sessionID: 'test',
    });
    service.start();
    try {
      const watching = (): boolean => service.watchingArchiveResults;
      assert.equal(watching(), false);
      await mkdir(join(runtimeDir, 'wal-archive'));
      for (let i = 0; i < 200 && !watching(); i++) await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(watching(), true);
    } finally {
      service.stop();
      await removeTempDir(runtimeDir);
    }
  });
});
