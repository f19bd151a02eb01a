import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { startLocalCluster, type ClusterInstance, type LocalCluster } from '../support/cluster.js';
import { writeConfigDir } from '../../test-kit/config.js';
import { eventually, freePort, handToPostgres, makeTempDir, removeTempDir } from '../../test-kit/env.js';
import { PgimProcess, pgimEntry, query } from '../../test-kit/pgim.js';

const sourceSecrets = { appPassword: 'src-app-pw', superuserPassword: 'src-su-pw' };
const cloneSecrets = { appPassword: 'clone-app-pw', superuserPassword: 'clone-su-pw' };
const replicaSecrets = { appPassword: 'rc-app-pw', superuserPassword: 'rc-su-pw' };

/** The source's streaming_replica certificate and CA, copied as CNPG's docs do into the other cluster's Secrets. */
async function copySourceCertificates(source: LocalCluster, configDir: string): Promise<void> {
  for (const [secret, keys] of [['itest-replication', ['tls.crt', 'tls.key']], ['itest-ca', ['ca.crt']]] as const) {
    await mkdir(join(configDir, 'secrets', secret), { recursive: true });
    for (const key of keys) await copyFile(join(source.configDir, 'secrets', secret, key), join(configDir, 'secrets', secret, key));
  }
}

function certificateSource(port: number): Record<string, unknown> {
  return {
    name: 'source-db',
    connectionParameters: { host: '127.0.0.1', port: String(port), user: 'streaming_replica', dbname: 'postgres', sslmode: 'verify-ca' },
    sslCert: { name: 'itest-replication', key: 'tls.crt' },
    sslKey: { name: 'itest-replication', key: 'tls.key' },
    sslRootCert: { name: 'itest-ca', key: 'ca.crt' },
  };
}

describe('bootstrap.pg_basebackup and replica clusters (real PostgreSQL, TLS client certificates)', function () {
  let source: LocalCluster;
  const su = <T extends Record<string, unknown>>(port: number, password: string, sql: string): Promise<T[]> => query<T>(port, 'postgres', password, sql);
  const srcSu = <T extends Record<string, unknown>>(i: ClusterInstance, sql: string): Promise<T[]> => su<T>(i.ports.pgPort, sourceSecrets.superuserPassword, sql);
  const timeline = async (port: number, password: string): Promise<number | undefined> =>
    (await su<{ tli: number }>(port, password, 'SELECT timeline_id AS tli FROM pg_control_checkpoint()'))[0]?.tli;
  const byName = (name: string): ClusterInstance => source.instances.find((i) => i.name === name)!;

  before(async function () {
    this.timeout(240_000);
    source = await startLocalCluster(2, {
      enableSuperuserAccess: true,
      smartShutdownTimeout: 1,
      stopDelay: 20,
      // Only for the wrong-password case: a replication connection as postgres with a password.
      pgHba: ['host replication postgres 127.0.0.1/32 scram-sha-256'],
      spec: { switchoverDelay: 20 },
    }, sourceSecrets);
    const primary = byName('itest-1');
    await query(primary.ports.pgPort, 'app', sourceSecrets.appPassword, 'CREATE TABLE origin AS SELECT generate_series(1, 100) AS n');
    await eventually(async () => ((await srcSu<{ n: string }>(byName('itest-2'), 'SELECT count(*) AS n FROM origin').catch(() => []))[0]?.n === '100' ? true : undefined), 60_000, 'itest-2 has the rows');
  });

  after(async () => {
    await source.stop();
  });

  it('clones a running pgim cluster over TLS with the streaming_replica certificate: a writable cluster on a new timeline with its own app password', async function () {
    this.timeout(240_000);
    const primary = byName('itest-1');
    const clone = await startLocalCluster(1, {
      name: 'ctest',
      enableSuperuserAccess: true,
      spec: { bootstrap: { pg_basebackup: { source: 'source-db', database: 'app', owner: 'app' } }, externalClusters: [certificateSource(primary.ports.pgPort)] },
    }, cloneSecrets, (dir) => copySourceCertificates(source, dir));
    try {
      const [c] = clone.instances;
      assert.ok(c?.pgim);
      const rows = await query<{ n: string }>(c.ports.pgPort, 'app', cloneSecrets.appPassword, 'SELECT count(*) AS n FROM origin');
      assert.equal(rows[0]?.n, '100', 'the data came from the source');
      await query(c.ports.pgPort, 'app', cloneSecrets.appPassword, 'INSERT INTO origin VALUES (1000)');
      await assert.rejects(query(c.ports.pgPort, 'app', sourceSecrets.appPassword, 'SELECT 1'), /password authentication failed/, "the source's app password does not work on the clone");
      assert.equal(await timeline(c.ports.pgPort, cloneSecrets.superuserPassword), ((await timeline(primary.ports.pgPort, sourceSecrets.superuserPassword)) ?? 0) + 1, 'the clone forked onto a new timeline');
      const onSource = await srcSu<{ n: string }>(primary, 'SELECT count(*) AS n FROM origin');
      assert.equal(onSource[0]?.n, '100', 'the source is unaffected');
      assert.ok(c.pgim.lines.some((l) => l.includes('"logger":"pg_basebackup"')), 'cloned by pg_basebackup');
      assert.ok(!c.pgim.lines.some((l) => l.includes('"logger":"initdb"')), 'no initdb');
      assert.deepEqual(await readdir(join(c.paths.runtimeDir, 'external')).catch(() => []), [], "the source's key is removed once cloned");
    } finally {
      await clone.stop();
    }
  });

  it('refuses bad credentials: a clear error naming the field, PGDATA left empty, never an initdb', async function () {
    this.timeout(120_000);
    const base = await makeTempDir('clone-bad');
    try {
      const configDir = join(base, 'config');
      await writeConfigDir(configDir, {
        name: 'btest',
        spec: {
          bootstrap: { pg_basebackup: { source: 'source-db' } },
          externalClusters: [{
            name: 'source-db',
            connectionParameters: { host: '127.0.0.1', port: String(byName('itest-1').ports.pgPort), user: 'postgres', dbname: 'postgres', sslmode: 'require' },
            password: { name: 'source-password', key: 'password' },
          }],
        },
      }, cloneSecrets);
      await mkdir(join(configDir, 'secrets', 'source-password'), { recursive: true });
      await writeFile(join(configDir, 'secrets', 'source-password', 'password'), 'not-the-password-4711');
      execFileSync(process.execPath, [pgimEntry, 'certs', '--cluster', 'btest', '--instances', '1', '--out', join(configDir, 'secrets')]);
      await handToPostgres(configDir);
      const paths = { configDir, pgdata: join(base, 'pgdata'), runtimeDir: join(base, 'runtime') };
      // `pgim init` is CNPG's `instance pgbasebackup`; `pgim run` clones on its first start.
      for (const command of ['init', 'run']) {
        const pgim = new PgimProcess(command, paths, { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() }, ['--pod-name', 'btest-1']);
        const exit = await pgim.waitExit(90_000);
        assert.equal(exit.code, 3, pgim.output);
        assert.match(pgim.output, /spec\.bootstrap\.pg_basebackup\.source: cloning spec\.externalClusters\[0\] \(source-db\) failed/);
        assert.match(pgim.output, /password authentication failed/);
        assert.ok(!pgim.output.includes('not-the-password-4711'), 'the password is in no log line');
        assert.ok(!pgim.lines.some((l) => l.includes('"logger":"initdb"')), 'no initdb');
        const left = await readdir(paths.pgdata).catch(() => []);
        assert.deepEqual(left, [], 'PGDATA is empty');
      }
      assert.deepEqual(await readdir(join(paths.runtimeDir, 'external')).catch(() => []), [], 'the passfile is removed');
    } finally {
      await removeTempDir(base);
    }
  });

  describe('a replica cluster (designated primary + 1 replica)', function () {
    let replica: LocalCluster;
    const rc = (n: number): ClusterInstance => replica.instances[n - 1]!;
    const rcSu = <T extends Record<string, unknown>>(i: ClusterInstance, sql: string): Promise<T[]> => su<T>(i.ports.pgPort, replicaSecrets.superuserPassword, sql);
    const count = async (i: ClusterInstance, table: string, superuserPassword: string): Promise<string | undefined> =>
      (await su<{ n: string }>(i.ports.pgPort, superuserPassword, `SELECT count(*) AS n FROM ${table}`).catch(() => []))[0]?.n;
    const arrives = (i: ClusterInstance, table: string, n: string, password = replicaSecrets.superuserPassword): Promise<true> =>
      eventually(async () => ((await count(i, table, password)) === n ? true : undefined), 90_000, `${i.name}: ${table} has ${n} rows`);

    before(async function () {
      this.timeout(240_000);
      replica = await startLocalCluster(2, {
        name: 'rtest',
        enableSuperuserAccess: true,
        smartShutdownTimeout: 1,
        stopDelay: 20,
        spec: {
          bootstrap: { pg_basebackup: { source: 'source-db' } },
          replica: { enabled: true, source: 'source-db' },
          externalClusters: [certificateSource(byName('itest-1').ports.pgPort)],
        },
      }, replicaSecrets, (dir) => copySourceCertificates(source, dir));
    });

    after(async () => {
      await replica.stop();
    });

    it('streams from the source: the designated primary is read-only, its replica cascades from it, /pg/status shows a replica', async () => {
      await query(byName('itest-1').ports.pgPort, 'app', sourceSecrets.appPassword, 'CREATE TABLE followed AS SELECT generate_series(1, 10) AS n');
      // Superuser passwords are the source's: the replica cluster applies nothing while it follows.
      await arrives(rc(1), 'followed', '10', sourceSecrets.superuserPassword);
      await arrives(rc(2), 'followed', '10', sourceSecrets.superuserPassword);
      await assert.rejects(query(rc(1).ports.pgPort, 'app', sourceSecrets.appPassword, 'INSERT INTO followed VALUES (0)'), /read-only transaction/);
      const status = (await (await fetch(`${rc(1).pgim!.statusUrl}/pg/status`)).json()) as { isPrimary: boolean; isWalReceiverActive: boolean };
      assert.equal(status.isPrimary, false);
      assert.equal(status.isWalReceiverActive, true);
      const cascading = await srcSu<{ application_name: string }>(byName('itest-1'), 'SELECT application_name FROM pg_stat_replication');
      assert.ok(cascading.some((r) => r.application_name === 'rtest-1'), 'the designated primary streams from the source');
      assert.ok(!cascading.some((r) => r.application_name === 'rtest-2'), 'its replica does not');
      const slots = await su<{ slot_name: string; active: boolean }>(rc(1).ports.pgPort, sourceSecrets.superuserPassword, 'SELECT slot_name, active FROM pg_replication_slots');
      assert.ok(slots.some((s) => s.slot_name === '_cnpg_rtest_2' && s.active), "rtest-2 streams through its HA slot on the designated primary");
      // The designated primary keeps the source's certificate and key (0600) for its WAL receiver; its replica has none.
      const dir = join(rc(1).paths.runtimeDir, 'external', '0-source-db');
      assert.deepEqual((await readdir(dir)).sort(), ['client.crt', 'client.key', 'root.crt']);
      assert.equal(execFileSync('stat', ['-c', '%a', join(dir, 'client.key')], { encoding: 'utf8' }).trim(), '600');
      assert.deepEqual(await readdir(join(rc(2).paths.runtimeDir, 'external')).catch(() => []), []);
    });

    it("follows its source through the source's switchover", async function () {
      this.timeout(180_000);
      execFileSync(process.execPath, [pgimEntry, 'switchover', '--config-dir', source.configDir, '--to', 'itest-2'], { encoding: 'utf8' });
      await eventually(async () => ((await srcSu<{ r: boolean }>(byName('itest-2'), 'SELECT pg_is_in_recovery() AS r').catch(() => []))[0]?.r === false ? true : undefined), 60_000, 'itest-2 promoted');
      await query(byName('itest-2').ports.pgPort, 'app', sourceSecrets.appPassword, 'INSERT INTO followed SELECT generate_series(11, 20)');
      await arrives(rc(1), 'followed', '20', sourceSecrets.superuserPassword);
      await arrives(rc(2), 'followed', '20', sourceSecrets.superuserPassword);
    });

    it('promotes with enabled: false: writable on a new timeline with its own passwords, its replica follows, the source is unaffected', async function () {
      this.timeout(180_000);
      const file = join(replica.configDir, 'cluster.yaml');
      const doc = parseDocument(await readFile(file, 'utf8'));
      doc.setIn(['spec', 'replica', 'enabled'], false);
      await writeFile(`${file}.tmp`, doc.toString());
      await rename(`${file}.tmp`, file);
      await eventually(async () => ((await rcSu<{ r: boolean }>(rc(1), 'SELECT pg_is_in_recovery() AS r').catch(() => []))[0]?.r === false ? true : undefined), 90_000, 'rtest-1 promoted with its own superuser password');
      await query(rc(1).ports.pgPort, 'app', replicaSecrets.appPassword, 'INSERT INTO followed VALUES (-1)');
      await arrives(rc(2), 'followed', '21');
      await eventually(async () => ((await readdir(join(rc(1).paths.runtimeDir, 'external')).catch(() => [])).length === 0 ? true : undefined), 30_000, "the source's key removed once promoted");
      const sourceTimeline = await timeline(byName('itest-2').ports.pgPort, sourceSecrets.superuserPassword);
      await rcSu(rc(1), 'CHECKPOINT');
      assert.equal(await timeline(rc(1).ports.pgPort, replicaSecrets.superuserPassword), (sourceTimeline ?? 0) + 1, 'a new timeline');
      assert.equal(await count(byName('itest-2'), 'followed', sourceSecrets.superuserPassword), '20', 'the source never sees the replica cluster\'s writes');
      await query(byName('itest-2').ports.pgPort, 'app', sourceSecrets.appPassword, 'INSERT INTO followed VALUES (21)');
      await new Promise((resolve) => setTimeout(resolve, 2000));
      assert.equal(await count(rc(1), 'followed', replicaSecrets.superuserPassword), '21', 'the promoted cluster no longer follows the source');
    });

    it('refuses to demote a promoted cluster back into a replica cluster (enabled: true again), naming the field', async function () {
      this.timeout(60_000);
      const file = join(replica.configDir, 'cluster.yaml');
      const doc = parseDocument(await readFile(file, 'utf8'));
      doc.setIn(['spec', 'replica', 'enabled'], true);
      await writeFile(`${file}.tmp`, doc.toString());
      await rename(`${file}.tmp`, file);
      await rc(1).pgim!.waitForLog(/demoting a primary into a replica cluster is not implemented/, 30_000);
      const rows = await rcSu<{ r: boolean }>(rc(1), 'SELECT pg_is_in_recovery() AS r');
      assert.equal(rows[0]?.r, false, 'still the primary');
    });
  });
});
