import { strict as assert } from 'node:assert';
import type pg from 'pg';
import { startLocalCluster, type ClusterInstance, type LocalCluster } from '../support/cluster.js';
import { writeClusterYaml, type TestClusterOptions } from '../../test-kit/config.js';
import { eventually, sleep } from '../../test-kit/env.js';
import { connect, killPostmaster, query } from '../../test-kit/pgim.js';

const secrets = { appPassword: 'rolling-app-pw', superuserPassword: 'rolling-su-pw' };

interface Status {
  postmasterPid: number;
  pendingRestart: boolean;
  replayPaused: boolean;
  isPodReady: boolean;
  pendingRestartWaitingFor?: string;
  replayPausedReason?: string;
}

/** Inserts ids 1, 2, ... into the primary and keeps those whose COMMIT was acknowledged, across restarts. */
class Writer {
  readonly acknowledged: number[] = [];
  private next = 1;
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(private readonly port: number) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    let client: pg.Client | undefined;
    while (!this.stopped) {
      try {
        client ??= await connect(this.port, 'app', secrets.appPassword);
        const id = this.next++;
        await client.query('INSERT INTO acked (id) VALUES ($1)', [id]);
        this.acknowledged.push(id);
      } catch {
        // The primary restarts: the id whose INSERT failed was not acknowledged; reconnect.
        await client?.end().catch(() => undefined);
        client = undefined;
        await sleep(100);
      }
      await sleep(5);
    }
    await client?.end().catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

describe('settings that need a restart reach every instance in CNPG order (3 instances, files mode, real PostgreSQL 15)', function () {
  let cluster: LocalCluster;
  let options: TestClusterOptions;
  const primary = (): ClusterInstance => cluster.instances[0]!;
  const replicas = (): ClusterInstance[] => cluster.instances.slice(1);
  const status = async (i: ClusterInstance): Promise<Status> => (await fetch(`http://127.0.0.1:${i.ports.statusPort}/pg/status`)).json() as Promise<Status>;
  const show = async (i: ClusterInstance, name: string): Promise<string> =>
    (await query<{ v: string }>(i.ports.pgPort, 'app', secrets.appPassword, `SELECT current_setting('${name}') AS v`))[0]?.v ?? '';
  const apply = async (change: Partial<TestClusterOptions>): Promise<void> => {
    options = { ...options, ...change, parameters: { ...options.parameters, ...change.parameters } };
    await writeClusterYaml(cluster.configDir, { ...options, spec: { instances: 3, ...options.spec } });
  };
  const allAt = (value: string, timeoutMs = 120_000): Promise<boolean> =>
    eventually(async () => {
      for (const i of cluster.instances) if ((await show(i, 'max_connections').catch(() => '')) !== value) return undefined;
      return true;
    }, timeoutMs, `max_connections = ${value} on every instance`);
  /** When each instance's pgim logged its restart for pending settings (ms), from line `from` on. */
  const restartTimes = (from: number[]): number[] =>
    cluster.instances.map((i, n) => {
      const record = i.pgim!.records().slice(from[n]).find((r) => String(r.msg).startsWith('restarting postgres in place'));
      assert.ok(record, `${i.name} restarted for the pending setting`);
      return Date.parse(String(record.ts));
    });
  const restartLog = (): string =>
    cluster.instances
      .flatMap((i) => i.pgim!.records().filter((r) => /restart|waiting|insufficient|paused/.test(String(r.msg))).map((r) => `${String(r.ts)} ${i.name} ${String(r.msg)}`))
      .sort()
      .join('\n');
  const lineCounts = (): number[] => cluster.instances.map((i) => i.pgim!.records().length);
  const insufficient = /insufficient parameter settings|recovery has paused/;

  before(async function () {
    this.timeout(240_000);
    options = { smartShutdownTimeout: 1, stopDelay: 20, parameters: { max_connections: '50' } };
    cluster = await startLocalCluster(3, options, secrets);
    await query(primary().ports.pgPort, 'app', secrets.appPassword, 'CREATE TABLE acked (id integer PRIMARY KEY)');
  });

  after(async () => {
    // Undefined when `before` failed.
    await (cluster as LocalCluster | undefined)?.stop();
  });

  it('50 -> 60 -> 40 max_connections: replicas first on a raise, the primary first on a decrease; replay never pauses; no acknowledged row lost', async function () {
    this.timeout(300_000);
    const writer = new Writer(primary().ports.pgPort);
    try {
      await eventually(() => Promise.resolve(writer.acknowledged.length > 20 ? true : undefined), 30_000, 'the writer to commit');

      let from = lineCounts();
      await apply({ parameters: { max_connections: '60' } });
      await allAt('60');
      const [primaryRaise, ...replicaRaises] = restartTimes(from);
      for (const at of replicaRaises) assert.ok(at <= primaryRaise!, `each replica restarted before the primary for the raise:\n${restartLog()}`);

      from = lineCounts();
      await apply({ parameters: { max_connections: '40' } });
      await allAt('40');
      const [primaryLower, ...replicaLowers] = restartTimes(from);
      for (const at of replicaLowers) assert.ok(at >= primaryLower!, `the primary restarted before its replicas for the decrease:\n${restartLog()}`);
      for (const i of cluster.instances) assert.equal((await status(i)).pendingRestart, false, `${i.name} has nothing pending`);
    } finally {
      await writer.stop();
    }
    for (const i of cluster.instances) {
      assert.deepEqual(i.pgim!.lines.filter((line) => insufficient.test(line)), [], `${i.name}: replay never paused for insufficient settings`);
    }
    const committed = writer.acknowledged;
    assert.ok(committed.length > 20, `the writer committed ${committed.length} rows`);
    const primaryLsn = (await query<{ lsn: string }>(primary().ports.pgPort, 'app', secrets.appPassword, 'SELECT pg_current_wal_lsn()::text AS lsn'))[0]!.lsn;
    for (const i of cluster.instances) {
      await eventually(async () => {
        const rows = await query<{ caught: boolean }>(i.ports.pgPort, 'app', secrets.appPassword, `SELECT COALESCE(pg_last_wal_replay_lsn() >= '${primaryLsn}', true) AS caught`);
        return rows[0]?.caught === true ? true : undefined;
      }, 60_000, `${i.name} to replay up to ${primaryLsn}`);
      const ids = new Set((await query<{ id: number }>(i.ports.pgPort, 'app', secrets.appPassword, 'SELECT id FROM acked')).map((r) => r.id));
      const lost = committed.filter((id) => !ids.has(id));
      assert.deepEqual(lost, [], `${i.name} holds every acknowledged row`);
    }
  });

  it('kubectl.kubernetes.io/restartedAt (kubectl cnpg restart): every instance restarts in place once, replicas first (issue 19, item 7)', async function () {
    this.timeout(300_000);
    const pids = await Promise.all(cluster.instances.map(async (i) => (await status(i)).postmasterPid));
    const from = lineCounts();
    await apply({ annotations: { 'kubectl.kubernetes.io/restartedAt': new Date().toISOString() } });
    await eventually(async () => {
      const now = await Promise.all(cluster.instances.map(async (i) => status(i).catch(() => undefined)));
      return now.every((s, n) => s !== undefined && s.postmasterPid !== pids[n] && s.isPodReady) ? true : undefined;
    }, 180_000, 'every postmaster restarted and ready');
    const [primaryAt, ...replicaAts] = restartTimes(from);
    for (const at of replicaAts) assert.ok(at <= primaryAt!, `each replica restarted before the primary:\n${restartLog()}`);
    // Once per annotation: the new postmasters started after it, so later checks (every 5 s) leave them alone.
    const restarted = await Promise.all(cluster.instances.map(async (i) => (await status(i)).postmasterPid));
    await sleep(12_000);
    assert.deepEqual(await Promise.all(cluster.instances.map(async (i) => (await status(i)).postmasterPid)), restarted);
    for (const i of cluster.instances) assert.equal((await status(i)).pendingRestart, false, `${i.name} has nothing pending`);
  });

  it('supervised: nothing restarts and /pg/status says what waits; a replica paused for insufficient settings is not ready, says why, and resumes after its restart', async function () {
    this.timeout(300_000);
    const pids = await Promise.all(cluster.instances.map(async (i) => (await status(i)).postmasterPid));
    await apply({ parameters: { max_connections: '45' }, spec: { primaryUpdateStrategy: 'supervised' } });
    for (const i of cluster.instances) {
      const waiting = await eventually(async () => (await status(i)).pendingRestartWaitingFor, 30_000, `${i.name} to say what waits`);
      assert.match(waiting, /primaryUpdateStrategy: supervised/);
    }
    assert.deepEqual(await Promise.all(cluster.instances.map(async (i) => (await status(i)).postmasterPid)), pids, 'nothing restarted');

    // The user restarts the primary alone (here: its postmaster dies and pgim starts it again with the new value).
    await killPostmaster(primary().paths.pgdata);
    await eventually(async () => ((await show(primary(), 'max_connections').catch(() => '')) === '45' ? true : undefined), 60_000, 'the primary at 45');
    await query(primary().ports.pgPort, 'app', secrets.appPassword, 'INSERT INTO acked (id) VALUES (-1)');
    for (const i of replicas()) {
      const paused = await eventually(async () => {
        const s = await status(i);
        return s.replayPausedReason !== undefined ? s : undefined;
      }, 60_000, `${i.name} to report its paused replay`);
      assert.match(paused.replayPausedReason!, /insufficient parameter settings: max_connections 40 < 45 on the primary/);
      assert.equal(paused.isPodReady, false);
      const ready = await fetch(`http://127.0.0.1:${i.ports.statusPort}/readyz`);
      assert.notEqual(ready.status, 200, `${i.name} is not ready while its replay is paused`);
      assert.match(await ready.text(), /recovery has paused/);
      await i.pgim!.waitForLog(/recovery has paused: hot standby is not possible/);
    }

    await apply({ spec: {} });
    for (const i of replicas()) {
      await i.pgim!.waitReady(120_000);
      await eventually(async () => ((await query<{ n: string }>(i.ports.pgPort, 'app', secrets.appPassword, 'SELECT count(*) AS n FROM acked WHERE id = -1'))[0]?.n === '1' ? true : undefined), 60_000, `${i.name} to replay past the pause`);
      assert.equal(await show(i, 'max_connections'), '45');
      assert.equal((await status(i)).replayPausedReason, undefined);
      await i.pgim!.waitForLog(/replay resumed; this replica is ready again/);
    }
  });
});
