import { strict as assert } from 'node:assert';
import { backupFiles, backupIdsFromListing, basePrefix, catalogEntry, parseBackupInfo, parseTablespaces, pythonCtime, walDirectory } from '../../src/backup/backup-info.js';
import { parseCatalogEntry } from '../../src/backup/barman.js';

/** backup.info and a backup's keys read as Barman 3.4 reads them (infofile.py, cloud.py CloudBackupCatalog). */
describe('Barman backup.info and backup files (pure)', () => {
  const info = parseBackupInfo('20261205T111023', [
    'backup_label=None', 'begin_time=2026-12-05 11:10:23.123456+00:00', 'begin_wal=000000010000000000000004', 'begin_xlog=0/4000028',
    'end_time=2026-12-05 11:10:31.5+01:00', 'end_wal=000000010000000000000004', 'end_xlog=0/4000100', 'status=DONE', 'timeline=1',
    "tablespaces=[('tbs', 16385, '/var/lib/tbs'), (\"it's\", 16386, '/x\\\\y\\n')]", 'version=150018', 'server_name=pg', '# a comment', '',
  ].join('\n'));

  it('parses the fields, None as unset, and the tablespaces literal with its escapes', () => {
    assert.equal(info.status, 'DONE');
    assert.equal(info.version, 150018);
    assert.equal(info.raw.backup_label, undefined);
    assert.deepEqual(info.tablespaces, [{ name: 'tbs', oid: 16385, location: '/var/lib/tbs' }, { name: "it's", oid: 16386, location: '/x\\y\n' }]);
    assert.deepEqual(parseTablespaces('[]'), []);
    assert.throws(() => parseTablespaces("[('a', 1)]"), /cannot parse the tablespaces/);
    assert.throws(() => parseBackupInfo('x', 'no equals sign'), /invalid line/);
    assert.equal(walDirectory(info), 'pg_wal');
    assert.equal(walDirectory(parseBackupInfo('x', 'version=90624')), 'pg_xlog');
  });

  it('gives the catalog entry barman-cloud-backup-list prints (ctime of the wall clock, to the second)', () => {
    assert.equal(pythonCtime('2026-12-05 11:10:23.123456+00:00'), 'Sat Dec  5 11:10:23 2026');
    assert.equal(pythonCtime('2026-12-14 01:02:03'), 'Mon Dec 14 01:02:03 2026');
    assert.deepEqual(catalogEntry(info), parseCatalogEntry({
      backup_id: '20261205T111023', status: 'DONE', begin_time: 'Sat Dec  5 11:10:23 2026', end_time: 'Sat Dec  5 11:10:31 2026',
      begin_wal: '000000010000000000000004', end_wal: '000000010000000000000004', begin_xlog: '0/4000028', end_xlog: '0/4000100', timeline: 1,
    }));
  });

  it('finds the backups and their tars as Barman does: parts in order, spurious prefixes and unknown extensions skipped', () => {
    assert.equal(basePrefix('', 'pg'), 'pg/base');
    assert.equal(basePrefix('/path/', 'pg'), 'path/pg/base');
    assert.deepEqual(backupIdsFromListing(['p/pg/base/20261205T111023/', 'p/pg/base/20261206T000000/', 'p/pg/base/stray']), ['20261205T111023', '20261206T000000']);
    const dir = 'p/pg/base/20261205T111023';
    const keys = ['backup.info', 'data.tar.gz', 'data_0001.tar.gz', 'data_0002.tar.gz', 'data2.tar', 'data.zip', '16385.tar', '163850.tar', '16386_0001.tar.bz2', '16386.tar.bz2'].map((k) => `${dir}/${k}`);
    const files = backupFiles(dir, info, keys);
    assert.deepEqual(files.map((f) => [f.oid, f.tars.map((t) => `${t.key.slice(dir.length + 1)}:${t.compression ?? 'none'}`)]), [
      [undefined, ['data.tar.gz:gzip', 'data_0001.tar.gz:gzip', 'data_0002.tar.gz:gzip']],
      [16385, ['16385.tar:none']],
      [16386, ['16386.tar.bz2:bzip2', '16386_0001.tar.bz2:bzip2']],
    ]);
    assert.throws(() => backupFiles(dir, info, keys.filter((k) => !k.includes('/16385.'))), /Missing file p\/pg\/base\/20261205T111023\/16385\.\* for server pg/);
  });
});
