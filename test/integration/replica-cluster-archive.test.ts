import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { clusterManifest, writeConfigDir } from '../../test-kit/config.js';
import { eventually, freePort, handToPostgres, makeTempDir, removeTempDir } from '../../test-kit/env.js';
import { killPostmaster, PgimProcess, query, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';
import { asPostgres } from '../../test-kit/barman-restore.js';
import { archivedWalNames, backupSpec, requireBackupParts, S3Server, writeBackupSecret } from '../../test-kit/s3.js';

const run = promisify(execFile);

/**
 * A replica cluster whose source is reachable only through its object store (`spec.replica.source` names an
 * externalClusters entry with a barmanObjectStore and no connectionParameters), as CNPG runs it: bootstrapped with
 * `bootstrap.recovery` from a backup written by plain barman-cloud-backup, the designated primary then stays a
 * standby that follows the source's archive with restore_command = `pgim wal-restore`; `enabled: false` promotes
 * it into a writable cluster with its own passwords on a new timeline.
 */
describe('a replica cluster following its source from the object store (real PostgreSQL, Barman Cloud, versitygw)', function () {
  this.timeout(900_000);
  const cleanup: (() => Promise<unknown>)[] = [];
  const origin = { appPassword: 'app-pass-origin', superuserPassword: 'su-pass-origin' };
  const replicaSecrets = { appPassword: 'app-pass-rc', superuserPassword: 'su-pass-rc' };
  const path = 'replica-archive';
  let s3: S3Server;
  let base: string;
  let originPorts: PgimPorts;
  let rcPaths: PgimPaths;
  let rcPorts: PgimPorts;
  let rc: PgimProcess;

  const originSql = (text: string): Promise<Record<string, unknown>[]> => query(originPorts.pgPort, 'postgres', origin.superuserPassword, text);
  /** On the replica cluster, whose roles are the source's until it is promoted. */
  const rcRows = async (password: string): Promise<string[]> => (await query(rcPorts.pgPort, 'postgres', password, 'SELECT x FROM t ORDER BY x')).map((r) => String(r.x));

  /** Inserts a row on the source and waits until the segment holding it is in the archive. */
  const insertAndArchive = async (value: string): Promise<void> => {
    await originSql(`INSERT INTO t VALUES ('${value}')`);
    const wal = String((await originSql('SELECT pg_walfile_name(pg_current_wal_lsn()) AS w'))[0]?.w);
    await originSql('SELECT pg_switch_wal()');
    await eventually(async () => ((await archivedWalNames(s3, path, 'itest')).includes(wal) ? true : undefined), 180_000, `${wal} archived`);
  };

  const rcManifest = (enabled: boolean): Record<string, unknown> => {
    const own = (backupSpec(s3, path).backup as { barmanObjectStore: Record<string, unknown> }).barmanObjectStore;
    return clusterManifest({
      name: 'rc',
      enableSuperuserAccess: true,
      spec: {
        bootstrap: { recovery: { source: 'origin' } },
        replica: { enabled, source: 'origin' },
        externalClusters: [{ name: 'origin', barmanObjectStore: { ...own, serverName: 'itest', wal: { maxParallel: 4 } } }],
      },
    });
  };

  before(async function () {
    requireBackupParts(this);
    s3 = await S3Server.start();
    cleanup.push(() => s3.stop());
    base = await makeTempDir('replica-archive');
    cleanup.push(() => removeTempDir(base));
    const originPaths = { configDir: join(base, 'origin', 'config'), pgdata: join(base, 'origin', 'pgdata'), runtimeDir: join(base, 'origin', 'runtime') };
    originPorts = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
    await writeConfigDir(originPaths.configDir, { enableSuperuserAccess: true, spec: backupSpec(s3, path) }, origin);
    await writeBackupSecret(originPaths.configDir, s3);
    await handToPostgres(join(base, 'origin'));
    const pgim = new PgimProcess('run', originPaths, originPorts);
    cleanup.push(() => pgim.stop().catch(() => killPostmaster(originPaths.pgdata)));
    await pgim.waitReady();
    await query(originPorts.pgPort, 'app', origin.appPassword, 'CREATE TABLE t (x text)');
    await originSql("INSERT INTO t VALUES ('1-before-backup')");
    await originSql('SELECT pg_switch_wal()');
    const [cmd, args] = asPostgres('barman-cloud-backup', [
      '--endpoint-url', s3.endpointURL, '--cloud-provider', 'aws-s3', '--host', join(originPaths.runtimeDir, 'run'), '--port', String(originPorts.pgPort),
      '--user', 'postgres', '--immediate-checkpoint', s3.destination(path), 'itest',
    ]);
    await run(cmd, args, { env: { ...s3.barmanEnv(), TMPDIR: base } });
    await insertAndArchive('2-after-backup');

    const dir = join(base, 'rc');
    rcPaths = { configDir: join(dir, 'config'), pgdata: join(dir, 'pgdata'), runtimeDir: join(dir, 'runtime') };
    rcPorts = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
    await writeConfigDir(rcPaths.configDir, { name: 'rc' }, replicaSecrets);
    await writeFile(join(rcPaths.configDir, 'cluster.yaml'), stringify(rcManifest(true)));
    await writeBackupSecret(rcPaths.configDir, s3);
    await mkdir(dir, { recursive: true });
    await handToPostgres(dir);
  });

  after(async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
  });

  it('bootstraps from the backup and replays the archive, staying a read-only standby with no upstream connection', async () => {
    rc = new PgimProcess('run', rcPaths, rcPorts);
    cleanup.push(() => rc.stop().catch(() => killPostmaster(rcPaths.pgdata)));
    await eventually(async () => ((await rcRows(origin.superuserPassword).catch((): string[] => [])).includes('2-after-backup') ? true : undefined), 300_000, 'the replica cluster has the archived row');
    assert.deepEqual(await rcRows(origin.superuserPassword), ['1-before-backup', '2-after-backup']);
    const [state] = await query(rcPorts.pgPort, 'postgres', origin.superuserPassword, "SELECT pg_is_in_recovery() AS r, current_setting('primary_conninfo') AS c");
    assert.deepEqual(state, { r: true, c: '' });
    await assert.rejects(query(rcPorts.pgPort, 'postgres', origin.superuserPassword, "INSERT INTO t VALUES ('nope')"), /read-only/);
    assert.ok(!rc.lines.some((l) => l.includes('"logger":"initdb"')), 'no initdb');
    assert.ok(!rc.lines.some((l) => l.includes('"logger":"pg_basebackup"')), 'no pg_basebackup');
  });

  it('keeps following: a row the source writes later arrives through the archive', async () => {
    await insertAndArchive('3-later');
    await eventually(async () => ((await rcRows(origin.superuserPassword).catch((): string[] => [])).includes('3-later') ? true : undefined), 300_000, 'the later row arrives');
  });

  it('promotes with enabled: false: writable on a new timeline with its own passwords; the source is unaffected', async () => {
    const edit = join(rcPaths.configDir, '.cluster.yaml.edit');
    await writeFile(edit, stringify(rcManifest(false)));
    await handToPostgres(edit);
    await rename(edit, join(rcPaths.configDir, 'cluster.yaml'));
    await eventually(async () => {
      const rows = await query(rcPorts.pgPort, 'app', replicaSecrets.appPassword, 'SELECT pg_is_in_recovery() AS r').catch(() => []);
      return rows[0]?.r === false ? true : undefined;
    }, 300_000, 'promoted, with its own app password');
    await query(rcPorts.pgPort, 'app', replicaSecrets.appPassword, "INSERT INTO t VALUES ('4-rc-only')");
    const timeline = Number((await query(rcPorts.pgPort, 'postgres', replicaSecrets.superuserPassword, 'SELECT timeline_id FROM pg_control_checkpoint()'))[0]?.timeline_id);
    assert.ok(timeline >= 2, `a new timeline (${timeline})`);
    assert.deepEqual((await originSql('SELECT x FROM t ORDER BY x')).map((r) => String(r.x)), ['1-before-backup', '2-after-backup', '3-later']);
  });
});
