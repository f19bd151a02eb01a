import { strict as assert } from 'node:assert';
import { parseClusterManifest } from '../../src/cluster/parse.js';
import { parseTargetTime, type RecoveryTarget } from '../../src/cluster/recovery.js';
import { ConfigError } from '../../src/errors/index.js';
import type { CatalogEntry } from '../../src/backup/barman.js';
import { chooseBackup, recoverySettings } from '../../src/backup/restore.js';
import { restoreCommand } from '../../src/backup/restore-runtime.js';
import { segmentsToFetch, walRestoreArgs } from '../../src/backup/wal-restore-settings.js';
import { chooseWalObject, walObjectPrefix } from '../../src/backup/wal-object.js';
import { renderOverrideConf } from '../../src/render/override-conf.js';

const store = (serverName = 'origin', extra = ''): string =>
  `      barmanObjectStore:\n        destinationPath: s3://backups/pg\n        serverName: ${serverName}\n        s3Credentials:\n          accessKeyId: {name: creds, key: id}\n          secretAccessKey: {name: creds, key: secret}\n${extra}`;

function manifest(recovery: string, spec = ''): string {
  return `apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata:\n  name: pg\nspec:\n  bootstrap:\n    recovery:\n${recovery}\n  externalClusters:\n    - name: origin\n${store()}${spec}`;
}

function refused(text: string): ConfigError {
  try {
    parseClusterManifest(text, 'f.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  assert.fail('the manifest parsed');
}

const target = (t: Partial<RecoveryTarget> = {}): RecoveryTarget => ({
  backupID: undefined, targetTLI: undefined, targetXID: undefined, targetName: undefined, targetLSN: undefined, targetTime: undefined,
  targetTimeParsed: undefined, targetImmediate: false, exclusive: false, ...t,
});

const entry = (id: string, end: string, endLSN: string, timeline = 1): CatalogEntry => ({
  backupId: id, backupName: undefined, status: 'DONE', beginTime: new Date(Date.parse(end) - 60_000), endTime: new Date(end),
  beginWal: undefined, endWal: undefined, beginLSN: undefined, endLSN, timeline,
});

describe('recovery (bootstrap.recovery, wal-restore): pure parts', () => {
  it('resolves a recovery from an externalClusters entry with its store and target', () => {
    const cluster = parseClusterManifest(manifest('      source: origin\n      recoveryTarget:\n        targetTime: "2026-12-05 04:00:00.5+00"\n        exclusive: true'), 'f.yaml');
    const recovery = cluster.bootstrap.recovery;
    assert.ok(recovery?.origin.kind === 'externalCluster');
    assert.equal(recovery.origin.store.serverName, 'origin');
    assert.equal(recovery.target.targetTimeParsed?.toISOString(), '2026-12-05T04:00:00.500Z');
    assert.equal(recovery.target.exclusive, true);
  });

  it("refuses what CNPG's webhook refuses, naming the field", () => {
    const cases: [string, string, RegExp][] = [
      ['      source: other', 'spec.bootstrap.recovery.source', /not in spec\.externalClusters/],
      ['      source: origin\n      recoveryTarget:\n        targetTime: yesterday', 'spec.bootstrap.recovery.recoveryTarget.targetTime', /invalid/],
      ['      source: origin\n      recoveryTarget:\n        targetLSN: "12"', 'spec.bootstrap.recovery.recoveryTarget.targetLSN', /not an LSN/],
      ['      source: origin\n      recoveryTarget:\n        targetXID: "4294967296"', 'spec.bootstrap.recovery.recoveryTarget.targetXID', /32-bit/],
      ['      source: origin\n      recoveryTarget:\n        targetName: x\n        targetLSN: 0/1', 'spec.bootstrap.recovery.recoveryTarget', /only one recovery target/],
      ['      source: origin\n      recoveryTarget:\n        targetName: before-upgrade', 'spec.bootstrap.recovery.recoveryTarget.backupID', /BackupID is missing/],
      ['      source: origin\n      recoveryTarget:\n        targetTLI: "-1"', 'spec.bootstrap.recovery.recoveryTarget.targetTLI', /positive/],
      ['      source: origin\n      backup:\n        name: b1', 'spec.bootstrap.recovery', /both source and backup/],
      ['      recoveryTarget:\n        targetLSN: 0/1', 'spec.bootstrap.recovery.source', /is required/],
    ];
    for (const [recovery, field, message] of cases) {
      const err = refused(manifest(recovery));
      assert.equal(err.field, field, recovery);
      assert.match(err.message, message);
    }
  });

  it('refuses to archive into the folder it restores from (same destinationPath and serverName)', () => {
    const own = '  backup:\n    barmanObjectStore:\n      destinationPath: s3://backups/pg/\n      serverName: origin\n      s3Credentials:\n        accessKeyId: {name: creds, key: id}\n        secretAccessKey: {name: creds, key: secret}\n';
    const err = refused(manifest('      source: origin', `\n${own}`));
    assert.equal(err.field, 'spec.backup.barmanObjectStore.serverName');
    assert.match(err.message, /would archive into the folder it restores from/);
    const other = own.replace('serverName: origin', 'serverName: pg');
    assert.ok(parseClusterManifest(manifest('      source: origin', `\n${other}`), 'f.yaml').bootstrap.recovery);
  });

  it('picks the backup as CNPG does: by id, the latest ending before the time or LSN, else the latest', () => {
    const catalog = [entry('b1', '2026-12-05T01:00:00Z', '0/3000000'), entry('b2', '2026-12-05T02:00:00Z', '0/5000000'), entry('b3', '2026-12-05T03:00:00Z', '0/7000000', 2)];
    assert.equal(chooseBackup(catalog, target())?.backupId, 'b3');
    assert.equal(chooseBackup(catalog, target({ backupID: 'b1' }))?.backupId, 'b1');
    assert.equal(chooseBackup(catalog, target({ targetTimeParsed: new Date('2026-12-05T02:30:00Z'), targetTime: 'x' }))?.backupId, 'b2');
    assert.equal(chooseBackup(catalog, target({ targetTimeParsed: new Date('2026-12-05T00:30:00Z'), targetTime: 'x' })), undefined);
    assert.equal(chooseBackup(catalog, target({ targetLSN: '0/5000001' }))?.backupId, 'b2');
    assert.equal(chooseBackup(catalog, target({ targetTLI: '1' }))?.backupId, 'b2');
  });

  it("writes PostgreSQL's recovery settings for each target", () => {
    assert.deepEqual(recoverySettings(target({ targetLSN: '0/3000060', exclusive: true }), 'cmd'), {
      restore_command: 'cmd', recovery_target_action: 'promote', recovery_target_timeline: 'latest', recovery_target_inclusive: 'false',
      archive_command: 'false', primary_conninfo: '', recovery_target_lsn: '0/3000060',
    });
    assert.equal(recoverySettings(target({ targetImmediate: true }), 'cmd').recovery_target, 'immediate');
    assert.equal(recoverySettings(target({ targetTime: 't', targetTimeParsed: new Date('2026-12-05T04:00:00Z') }), 'cmd').recovery_target_time, '2026-12-05 04:00:00.000+00');
    assert.equal(parseTargetTime('2026-12-05T04:00:00+02:00')?.toISOString(), '2026-12-05T02:00:00.000Z');
    assert.equal(parseTargetTime('2026-12-05 04:00:00')?.toISOString(), '2026-12-05T04:00:00.000Z');
  });

  it('prefetches the next segments, across a log boundary; a history file alone', () => {
    assert.deepEqual(segmentsToFetch('0000000100000000000000FE', 3), ['0000000100000000000000FE', '0000000100000000000000FF', '000000010000000100000000']);
    assert.deepEqual(segmentsToFetch('00000002.history', 4), ['00000002.history']);
    assert.deepEqual(segmentsToFetch('000000010000000000000001', 1), ['000000010000000000000001']);
  });

  it("chooses the WAL object barman-cloud-wal-restore 3.4 would download, with its compression", () => {
    const store = { destinationPath: 's3://backups/pg', serverName: 'origin' };
    const prefix = walObjectPrefix(store, '000000010000000000000003');
    assert.equal(prefix, 'pg/origin/wals/0000000100000000/000000010000000000000003');
    assert.equal(walObjectPrefix({ destinationPath: 's3://backups', serverName: 'origin' }, '00000002.history'), 'origin/wals/00000002.history');
    const dir = 'pg/origin/wals/0000000100000000/';
    assert.deepEqual(chooseWalObject([`${dir}000000010000000000000003`], prefix), { key: `${dir}000000010000000000000003`, compression: undefined });
    assert.deepEqual(chooseWalObject([`${dir}000000010000000000000003.gz`], prefix), { key: `${dir}000000010000000000000003.gz`, compression: 'gzip' });
    assert.deepEqual(chooseWalObject([`${dir}000000010000000000000003.bz2`], prefix), { key: `${dir}000000010000000000000003.bz2`, compression: 'bzip2' });
    assert.deepEqual(chooseWalObject([`${dir}000000010000000000000003.snappy`], prefix), { key: `${dir}000000010000000000000003.snappy`, compression: 'snappy' });
    // A backup label is skipped; a .partial is a candidate and, listed after the exact match, wins (Barman's loop).
    assert.deepEqual(chooseWalObject([`${dir}000000010000000000000003`, `${dir}000000010000000000000003.00000028.backup`], prefix), { key: `${dir}000000010000000000000003`, compression: undefined });
    assert.deepEqual(chooseWalObject([`${dir}000000010000000000000003.partial`], prefix), { key: `${dir}000000010000000000000003.partial`, compression: undefined });
    assert.deepEqual(chooseWalObject([`${dir}000000010000000000000003`, `${dir}000000010000000000000003.partial`], prefix), { key: `${dir}000000010000000000000003.partial`, compression: undefined });
    assert.equal(chooseWalObject([`${dir}000000010000000000000003.00000028.backup`, `${dir}000000010000000000000003.junk`], prefix), undefined);
    assert.equal(chooseWalObject([], prefix), undefined);
  });

  it('runs barman-cloud-wal-restore with the store and the extra restore arguments, never a credential', () => {
    const cluster = parseClusterManifest(manifest('      source: origin'), 'f.yaml');
    const origin = cluster.bootstrap.recovery?.origin;
    assert.ok(origin?.kind === 'externalCluster');
    assert.deepEqual(walRestoreArgs({ ...origin.store, endpointURL: 'http://127.0.0.1:9000', wal: { ...origin.store.wal, restoreAdditionalCommandArgs: ['--read-timeout=60', '--cloud-provider=x'] } }, 'W', 'pg_wal/RECOVERYXLOG'), [
      '--endpoint-url', 'http://127.0.0.1:9000', '--cloud-provider', 'aws-s3', 's3://backups/pg', 'origin', '--read-timeout=60', 'W', 'pg_wal/RECOVERYXLOG',
    ]);
  });

  it("gives a replica restore_command = pgim wal-restore when the cluster has an object store", () => {
    const command = restoreCommand('/controller', ['/usr/bin/node', '/opt/pgim/pgim.js']);
    // A segment already read ahead into the spool is moved by the shell; anything else goes to pgim.
    const expected = 'test -f /controller/wal-restore-spool/%f && mv -f /controller/wal-restore-spool/%f %p 2>/dev/null || exec /usr/bin/node /opt/pgim/pgim.js wal-restore --runtime-dir /controller %f %p';
    assert.equal(command, expected);
    assert.ok(renderOverrideConf({ primaryConninfo: 'host=p', slotName: 's', restoreCommand: command }).split('\n').includes(`restore_command = '${expected}'`));
    // Quoted for the shell where a path needs it; never a secret.
    assert.equal(restoreCommand("/run/it's here", ['node', 'pgim']), "test -f '/run/it'\\''s here/wal-restore-spool/%f' && mv -f '/run/it'\\''s here/wal-restore-spool/%f' %p 2>/dev/null || exec node pgim wal-restore --runtime-dir '/run/it'\\''s here' %f %p");
    assert.doesNotMatch(renderOverrideConf({ primaryConninfo: 'host=p', slotName: 's' }), /restore_command/);
  });
});
