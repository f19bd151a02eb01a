import { strict as assert } from 'node:assert';
import { execFile, execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseDocument } from 'yaml';
import { lostOn, startAckedWriter } from '../../test-kit/acked-writer.js';
import { eventually, sleep } from '../../test-kit/env.js';
import { connect, pgimEntry, postmasterPid, query } from '../../test-kit/pgim.js';
import { startLocalCluster, type ClusterInstance, type LocalCluster } from '../support/cluster.js';

const secrets = { appPassword: 'sync-app-pw', superuserPassword: 'sync-su-pw' };
const run = promisify(execFile);
/** CI keeps these short; `PGIM_SYNC_ROUNDS=20 PGIM_ASYNC_ROUNDS=20` is the measurement of the README. */
const syncRounds = Number(process.env.PGIM_SYNC_ROUNDS ?? 3);
const asyncRounds = Number(process.env.PGIM_ASYNC_ROUNDS ?? 1);

describe('synchronous replication and zero-loss failover (3 instances, ANY 1, real PostgreSQL)', function () {
  let cluster: LocalCluster;
  let nextId = 1;
  const byName = (name: string): ClusterInstance => cluster.instances.find((i) => i.name === name)!;
  const su = <T extends Record<string, unknown>>(i: ClusterInstance, sql: string): Promise<T[]> =>
    query<T>(i.ports.pgPort, 'postgres', secrets.superuserPassword, sql);
  const inRecovery = async (i: ClusterInstance): Promise<boolean | undefined> =>
    su<{ r: boolean }>(i, 'SELECT pg_is_in_recovery() AS r').then((rows) => rows[0]?.r, () => undefined);
  const syncNames = async (i: ClusterInstance): Promise<string | undefined> =>
    su<{ v: string }>(i, "SELECT current_setting('synchronous_standby_names') AS v").then((rows) => rows[0]?.v, () => undefined);
  const primaryNow = async (): Promise<ClusterInstance> =>
    eventually(async () => (await Promise.all(cluster.instances.map(async (i) => ((await inRecovery(i)) === false ? i : undefined)))).find(Boolean), 60_000, 'a primary');
  const othersThan = (...names: string[]): ClusterInstance[] => cluster.instances.filter((i) => !names.includes(i.name));
  /** `pgim switchover` without --to: the CLI elects. Resolves with its exit code and output. */
  const elect = (failover: boolean): Promise<{ code: number; out: string }> =>
    run(process.execPath, [pgimEntry, 'switchover', '--config-dir', cluster.configDir, ...(failover ? ['--failover'] : [])], { encoding: 'utf8' }).then(
      (r) => ({ code: 0, out: r.stdout }),
      (err: unknown) => {
        const failed = err as { code?: number; stdout?: string; stderr?: string };
        return { code: failed.code ?? -1, out: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
      },
    );
  const electedTarget = (out: string): string => /targetPrimary: \S+ -> (\S+)/.exec(out)?.[1] ?? '';
  const waitWritable = (i: ClusterInstance): Promise<true> =>
    eventually(async () => ((await inRecovery(i)) === false ? true : undefined), 60_000, `${i.name} writable`);
  const waitStreaming = (primary: ClusterInstance, others: readonly ClusterInstance[]): Promise<true> =>
    eventually(async () => {
      const rows = await su<{ application_name: string }>(primary, "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'").catch(() => []);
      return others.every((o) => rows.some((r) => r.application_name === o.name)) ? true : undefined;
    }, 120_000, `${others.map((o) => o.name).join(', ')} streaming from ${primary.name}`);
  const waitSyncNames = (i: ClusterInstance, expected: string): Promise<true> =>
    eventually(async () => ((await syncNames(i)) === expected ? true : undefined), 60_000, `${i.name} synchronous_standby_names = ${expected}`);
  /** The SQL list pgim renders for `required`: the streaming standbys, the others, the primary last. */
  const requiredList = (primary: ClusterInstance, streaming: readonly ClusterInstance[]): string => {
    const standbys = othersThan(primary.name).map((i) => i.name);
    const up = standbys.filter((n) => streaming.some((s) => s.name === n)).sort();
    const down = standbys.filter((n) => !up.includes(n)).sort();
    return `ANY 1 (${[...up, ...down, primary.name].map((n) => `"${n}"`).join(',')})`;
  };
  /** kill -9 of pgim and of its postmaster: a lost node. */
  const killHard = async (i: ClusterInstance): Promise<void> => {
    const postmaster = await postmasterPid(i.paths.pgdata);
    i.pgim!.signal('SIGKILL');
    if (postmaster !== undefined) {
      try {
        process.kill(postmaster, 'SIGKILL');
      } catch {
        // gone with pgim already
      }
    }
    await i.pgim!.waitExit();
  };
  const editSynchronous = async (edit: (doc: ReturnType<typeof parseDocument>) => void): Promise<void> => {
    const file = join(cluster.configDir, 'cluster.yaml');
    const doc = parseDocument(await readFile(file, 'utf8'));
    edit(doc);
    await writeFile(`${file}.tmp`, doc.toString());
    execFileSync('mv', [`${file}.tmp`, file]);
  };
  const targetPrimaryInYaml = async (): Promise<unknown> => parseDocument(await readFile(join(cluster.configDir, 'cluster.yaml'), 'utf8')).getIn(['status', 'targetPrimary']);
  const appClient = (i: ClusterInstance) => connect(i.ports.pgPort, 'app', secrets.appPassword);
  /** Acknowledged ids missing on `i`; retried, as a fresh primary ends the sessions opened while it was read-only. */
  const countLost = (i: ClusterInstance, ids: readonly number[]): Promise<number> =>
    eventually(async () => {
      const client = await appClient(i).catch(() => undefined);
      if (client === undefined) return undefined;
      try {
        return await lostOn(client, 'acked', ids);
      } catch {
        return undefined;
      } finally {
        await client.end().catch(() => undefined);
      }
    }, 60_000, `counting acknowledged rows on ${i.name}`);

  before(async function () {
    this.timeout(300_000);
    cluster = await startLocalCluster(
      3,
      {
        enableSuperuserAccess: true,
        smartShutdownTimeout: 1,
        stopDelay: 20,
        spec: {
          switchoverDelay: 20,
          postgresql: {
            parameters: { shared_buffers: '16MB', max_connections: '30' },
            synchronous: { method: 'any', number: 1, dataDurability: 'required' },
          },
        },
      },
      secrets,
    );
    const primary = byName('itest-1');
    await waitStreaming(primary, othersThan('itest-1'));
    await query(primary.ports.pgPort, 'app', secrets.appPassword, 'CREATE TABLE acked (id bigint PRIMARY KEY)');
  });

  after(async () => {
    await cluster.stop();
  });

  it('renders synchronous_standby_names, follows standbys leaving and returning by reload, reports sync state', async () => {
    const primary = byName('itest-1');
    const [two, three] = othersThan('itest-1') as [ClusterInstance, ClusterInstance];
    await waitSyncNames(primary, 'ANY 1 ("itest-2","itest-3","itest-1")');
    const started = async (): Promise<string | undefined> => (await su<{ t: string }>(primary, 'SELECT pg_postmaster_start_time()::text AS t'))[0]?.t;
    const startedAt = await started();

    // The CNPG shape in /pg/status, and the metrics.
    await eventually(async () => {
      const doc = (await (await fetch(`${primary.pgim!.statusUrl}/pg/status`)).json()) as { replicationInfo?: { applicationName: string; syncState: string; syncPriority: string }[] };
      const rows = doc.replicationInfo ?? [];
      return rows.length === 2 && rows.every((r) => r.syncState === 'quorum' && r.syncPriority === '1') ? true : undefined;
    }, 30_000, 'replicationInfo: both standbys quorum, priority "1"');
    // Scrapes may be served from the collector's cache: the standbys show once a collection ran after they joined.
    const metrics = await eventually(async () => {
      const text = await (await fetch(`http://127.0.0.1:${primary.ports.metricsPort}/metrics`)).text();
      return text.includes('pgim_replication_sync_priority{application_name="itest-3"') ? text : undefined;
    }, 60_000, 'the standbys in the metrics');
    assert.match(metrics, /^pgim_replication_sync_priority\{application_name="itest-2",sync_state="quorum"\} 1$/m);
    assert.match(metrics, /^cnpg_collector_sync_replicas\{value="expected"\} 1$/m);
    assert.match(metrics, /^cnpg_collector_sync_replicas\{value="observed"\} 1$/m);

    // itest-2 leaves: it moves after the streaming one (a reload, not a restart); it comes back: as before.
    await two.pgim!.stop();
    await waitSyncNames(primary, 'ANY 1 ("itest-3","itest-2","itest-1")');
    await query(primary.ports.pgPort, 'app', secrets.appPassword, `INSERT INTO acked VALUES (${nextId++})`);
    await cluster.start(two).waitReady(120_000);
    await waitStreaming(primary, [two, three]);
    await waitSyncNames(primary, 'ANY 1 ("itest-2","itest-3","itest-1")');
    assert.equal(await started(), startedAt, 'the primary was reloaded, never restarted');
  });

  it('preferred never blocks writes with both standbys stopped; required does, until one returns', async function () {
    this.timeout(600_000);
    const primary = await primaryNow();
    const standbys = othersThan(primary.name);
    await editSynchronous((doc) => {
      doc.setIn(['spec', 'postgresql', 'synchronous', 'dataDurability'], 'preferred');
    });
    await waitSyncNames(primary, `ANY 1 (${standbys.map((s) => `"${s.name}"`).join(',')})`);
    for (const s of standbys) await s.pgim!.stop();
    // The list shrinks to nothing: commits go through with both standbys gone.
    await waitSyncNames(primary, '');
    await query(primary.ports.pgPort, 'app', secrets.appPassword, `INSERT INTO acked VALUES (${nextId++})`);

    await editSynchronous((doc) => {
      doc.setIn(['spec', 'postgresql', 'synchronous', 'dataDurability'], 'required');
    });
    await waitSyncNames(primary, requiredList(primary, []));
    const client = await appClient(primary);
    const blockedId = nextId++;
    let committed = false;
    const insert = client.query(`INSERT INTO acked VALUES (${blockedId})`).then(() => {
      committed = true;
    });
    // The commit waits for a standby (wait event SyncRep), and stays unacknowledged while none is there.
    await eventually(async () => ((await su(primary, "SELECT 1 FROM pg_stat_activity WHERE wait_event = 'SyncRep'")).length > 0 ? true : undefined), 30_000, 'a commit waiting for a standby');
    await sleep(2000);
    assert.equal(committed, false, 'a commit was acknowledged with no standby (dataDurability: required)');
    const [first, second] = standbys as [ClusterInstance, ClusterInstance];
    await cluster.start(first).waitReady(120_000);
    await insert;
    await client.end();
    assert.equal((await su<{ n: string }>(first, `SELECT count(*) AS n FROM acked WHERE id = ${blockedId}`).catch(() => []))[0]?.n ?? '1', '1');
    await cluster.start(second).waitReady(120_000);
    await waitStreaming(primary, standbys);
  });

  it('switches over under load (no --to: the most advanced streaming replica): nothing acknowledged lost, never two writable', async function () {
    this.timeout(300_000);
    const old = await primaryNow();
    await waitSyncNames(old, requiredList(old, othersThan(old.name)));
    const writer = await startAckedWriter(() => appClient(old), 'acked', (nextId += 1_000_000));
    let splitBrain = 0;
    const watching = { on: true };
    const watcher = (async () => {
      while (watching.on) {
        const states = await Promise.all(cluster.instances.map(inRecovery));
        if (states.filter((s) => s === false).length > 1) splitBrain++;
        await sleep(10);
      }
    })();
    await sleep(1500);
    const result = await elect(false);
    assert.equal(result.code, 0, result.out);
    const target = byName(electedTarget(result.out));
    await waitWritable(target);
    await writer.finished;
    watching.on = false;
    await watcher;
    assert.ok(writer.acked.length > 0);
    const lost = await countLost(target, writer.acked);
    assert.equal(lost, 0, `${lost} of ${writer.acked.length} acknowledged rows missing on ${target.name}`);
    assert.equal(splitBrain, 0, 'two instances accepted writes at the same moment');
    await waitStreaming(target, othersThan(target.name));
    // A commit in flight at the switchover may have landed unacknowledged: the next ids start well past it.
    nextId = writer.acked.at(-1)! + 1_000;
    console.log(`      switchover ${old.name} -> ${target.name} under load: ${writer.acked.length} acknowledged, 0 lost`);
  });

  /** One failover round: write, kill -9 the primary, `switchover --failover` (no --to), count; the dead one rejoins. */
  const failoverRound = async (): Promise<{ acked: number; lost: number; from: string; to: string; writableMs: number }> => {
    const old = await primaryNow();
    await waitStreaming(old, othersThan(old.name));
    const writer = await startAckedWriter(() => appClient(old), 'acked', nextId);
    // Each round must have acknowledged writes to lose: the first commit waits for a standby's flush.
    await eventually(() => Promise.resolve(writer.acked.length > 0 ? true : undefined), 60_000, 'a first acknowledged commit');
    await sleep(1500);
    await killHard(old);
    const killedAt = Date.now();
    let result = await elect(true);
    // A replica may still report the dead primary for a moment; the command is retried as an operator would.
    for (let tries = 0; result.code !== 0 && tries < 20; tries++) {
      await sleep(250);
      result = await elect(true);
    }
    assert.equal(result.code, 0, result.out);
    const target = byName(electedTarget(result.out));
    await waitWritable(target);
    const writableMs = Date.now() - killedAt;
    // Its sessions end once they notice the postmaster is gone (a commit waiting for a standby included).
    await Promise.race([writer.finished, sleep(15_000)]);
    const lost = await countLost(target, writer.acked);
    nextId = (writer.acked.at(-1) ?? nextId) + 1_000;
    await cluster.start(old).waitReady(180_000);
    await waitStreaming(target, othersThan(target.name));
    return { acked: writer.acked.length, lost, from: old.name, to: target.name, writableMs };
  };

  it(`fails over with no acknowledged row lost: ${syncRounds} rounds of kill -9 under writes (ANY 1, required); asynchronous for contrast`, async function () {
    this.timeout(120_000 * (syncRounds + asyncRounds) + 120_000);
    const results: string[] = [];
    let lostTotal = 0;
    for (let round = 1; round <= syncRounds; round++) {
      const r = await failoverRound();
      lostTotal += r.lost;
      results.push(`${r.from}->${r.to} acked ${r.acked} lost ${r.lost} writable ${r.writableMs} ms`);
    }
    console.log(`      synchronous (ANY 1, required), ${syncRounds} rounds:\n        ${results.join('\n        ')}`);
    assert.equal(lostTotal, 0, `acknowledged rows lost under synchronous replication: ${results.join('; ')}`);
    if (asyncRounds === 0) return;
    // The contrast, reported and not asserted: without synchronous replication a failover may lose commits.
    await editSynchronous((doc) => {
      doc.deleteIn(['spec', 'postgresql', 'synchronous']);
    });
    await waitSyncNames(await primaryNow(), '');
    const asyncResults: string[] = [];
    let asyncLost = 0;
    for (let round = 1; round <= asyncRounds; round++) {
      const r = await failoverRound();
      asyncLost += r.lost;
      asyncResults.push(`${r.from}->${r.to} acked ${r.acked} lost ${r.lost} writable ${r.writableMs} ms`);
    }
    console.log(`      asynchronous, ${asyncRounds} rounds (${asyncLost} acknowledged rows lost in all):\n        ${asyncResults.join('\n        ')}`);
    await editSynchronous((doc) => {
      doc.setIn(['spec', 'postgresql', 'synchronous'], { method: 'any', number: 1, dataDurability: 'required' });
    });
    const primary = await primaryNow();
    await waitSyncNames(primary, requiredList(primary, othersThan(primary.name)));
  });

  it('refuses a failover when the only reachable replica was not synchronous, then elects the one that was', async function () {
    this.timeout(600_000);
    const primary = await primaryNow();
    const [synchronous, lagging] = othersThan(primary.name) as [ClusterInstance, ClusterInstance];
    // `lagging` stops: the commits that follow are acknowledged by `synchronous` alone.
    await lagging.pgim!.stop();
    const ids = Array.from({ length: 20 }, () => nextId++);
    for (const id of ids) await query(primary.ports.pgPort, 'app', secrets.appPassword, `INSERT INTO acked VALUES (${id})`);
    await killHard(primary);
    await synchronous.pgim!.stop();
    await cluster.start(lagging).waitReady(120_000);
    const before = await targetPrimaryInYaml();
    const refused = await elect(true);
    assert.notEqual(refused.code, 0, refused.out);
    assert.match(refused.out, /refusing to fail over: with ANY 1 over 2 standbys, every acknowledged commit is sure to be on one of 2 answering replicas \(N - k \+ 1\), and 1 answered/);
    assert.ok(refused.out.includes(`${synchronous.name} (unreachable`), refused.out);
    assert.deepEqual(await targetPrimaryInYaml(), before, 'cluster.yaml unchanged');
    assert.equal(await inRecovery(lagging), true, `${lagging.name} was not promoted`);

    // The synchronous one returns: both answer, and the most advanced (it) is elected; nothing is missing.
    await cluster.start(synchronous).waitReady(120_000);
    const result = await elect(true);
    assert.equal(result.code, 0, result.out);
    assert.equal(electedTarget(result.out), synchronous.name);
    await waitWritable(synchronous);
    assert.equal(await countLost(synchronous, ids), 0);
    await cluster.start(primary).waitReady(180_000);
    await waitStreaming(synchronous, [lagging, primary]);
  });
});
