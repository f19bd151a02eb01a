import { strict as assert } from 'node:assert';
import { execFile, execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseDocument } from 'yaml';
import { startLocalCluster, type ClusterInstance, type LocalCluster } from '../support/cluster.js';
import { eventually, sleep } from '../../test-kit/env.js';
import { connect, pgimEntry, query } from '../../test-kit/pgim.js';

const secrets = { appPassword: 'sw-app-pw', superuserPassword: 'sw-su-pw' };
const run = promisify(execFile);

describe('switchover, failover and fencing: follow targetPrimary in process (3 instances, real PostgreSQL)', function () {
  let cluster: LocalCluster;
  const byName = (name: string): ClusterInstance => cluster.instances.find((i) => i.name === name)!;
  const su = <T extends Record<string, unknown>>(i: ClusterInstance, sql: string): Promise<T[]> =>
    query<T>(i.ports.pgPort, 'postgres', secrets.superuserPassword, sql);
  const inRecovery = async (i: ClusterInstance): Promise<boolean | undefined> =>
    su<{ r: boolean }>(i, 'SELECT pg_is_in_recovery() AS r').then((rows) => rows[0]?.r, () => undefined);
  const switchTo = (target: string, failover = false): string =>
    execFileSync(process.execPath, [pgimEntry, 'switchover', '--config-dir', cluster.configDir, '--to', target, ...(failover ? ['--failover'] : [])], { encoding: 'utf8' });
  /** Waits until `primary` is writable and every other running instance streams from it; returns both times. */
  const settle = async (primary: string, others: string[]): Promise<{ writableMs: number; streamingMs: number }> => {
    const started = Date.now();
    await eventually(async () => ((await inRecovery(byName(primary))) === false ? true : undefined), 30_000, `${primary} writable`);
    const writableMs = Date.now() - started;
    await eventually(async () => {
      const rows = await su<{ application_name: string; state: string }>(byName(primary), "SELECT application_name, state FROM pg_stat_replication WHERE state = 'streaming'");
      return others.every((o) => rows.some((r) => r.application_name === o)) ? true : undefined;
    }, 60_000, `${others.join(', ')} streaming from ${primary}`);
    return { writableMs, streamingMs: Date.now() - started };
  };

  before(async function () {
    this.timeout(240_000);
    cluster = await startLocalCluster(3, { enableSuperuserAccess: true, smartShutdownTimeout: 1, stopDelay: 20, spec: { switchoverDelay: 20 } }, secrets);
    await settle('itest-1', ['itest-2', 'itest-3']);
  });

  after(async () => {
    await cluster.stop();
  });

  it('refuses an unknown target and a target that is not a healthy replica', () => {
    assert.throws(() => switchTo('itest-9'), /not an instance of cluster itest/);
    assert.throws(() => switchTo('itest-1'), /already the target primary/);
  });

  it('switches over under a pgbench write load: nothing committed is lost, never two writable primaries', async () => {
    const old = byName('itest-1');
    await query(old.ports.pgPort, 'app', secrets.appPassword, 'CREATE TABLE ledger (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())');
    const script = join(cluster.base, 'ledger.sql');
    await writeFile(script, 'INSERT INTO ledger DEFAULT VALUES;\n');
    const bench = run('pgbench', ['-n', '-c', '4', '-T', '6', '-f', script, '-h', '127.0.0.1', '-p', String(old.ports.pgPort), '-U', 'app', 'app'], {
      env: { ...process.env, PGPASSWORD: secrets.appPassword },
    }).then((r) => r.stdout, (err: unknown) => (err as { stdout?: string }).stdout ?? '');
    let splitBrain = 0;
    const watching = { on: true };
    const watcher = (async () => {
      while (watching.on) {
        const states = await Promise.all(cluster.instances.map(inRecovery));
        if (states.filter((s) => s === false).length > 1) splitBrain++;
        await sleep(10);
      }
    })();
    await sleep(2000);
    switchTo('itest-2');
    const times = await settle('itest-2', ['itest-1', 'itest-3']);
    const output = await bench;
    watching.on = false;
    await watcher;
    const committed = Number(/number of transactions actually processed: (\d+)/.exec(output)?.[1] ?? 'NaN');
    assert.ok(committed > 0, output);
    const rows = await su<{ n: string }>(byName('itest-2'), 'SELECT count(*) AS n FROM ledger');
    assert.ok(Number(rows[0]?.n) >= committed, `${rows[0]?.n ?? '?'} rows on the new primary, pgbench saw ${committed} commits`);
    assert.equal(splitBrain, 0, 'two instances accepted writes at the same moment');
    const tli = await su<{ tli: number }>(byName('itest-2'), 'SELECT timeline_id AS tli FROM pg_control_checkpoint()');
    assert.equal(tli[0]?.tli, 2, 'the promotion started timeline 2');
    console.log(`      under load: new primary writable ${times.writableMs} ms, all replicas streaming ${times.streamingMs} ms`);
  });

  it('switches over back and forth five times; every instance healthy after each', async () => {
    const timings: string[] = [];
    let current = 'itest-2';
    for (let round = 0; round < 5; round++) {
      const target = current === 'itest-2' ? 'itest-3' : 'itest-2';
      await sleep(500);
      switchTo(target);
      const t = await settle(target, cluster.instances.map((i) => i.name).filter((n) => n !== target));
      timings.push(`${t.writableMs}/${t.streamingMs}`);
      current = target;
    }
    for (const i of cluster.instances) assert.equal((await fetch(`${i.pgim!.statusUrl}/readyz`)).status, 200, i.name);
    console.log(`      writable/all-streaming ms per round: ${timings.join(', ')}`);
  });

  it('after a promotion ends the sessions opened on the replica, never one opened once the new primary takes writes', async () => {
    const primaryName = (await Promise.all(cluster.instances.map(async (i) => ((await inRecovery(i)) === false ? i.name : undefined)))).find(Boolean)!;
    const target = byName(cluster.instances.map((i) => i.name).find((n) => n !== primaryName)!);
    const session = (): ReturnType<typeof connect> => connect(target.ports.pgPort, 'postgres', secrets.superuserPassword, 'postgres');
    const alive = (client: Awaited<ReturnType<typeof connect>>): Promise<boolean> => client.query('SELECT 1').then(() => true, () => false);
    // Dirty pages on the replica make the promotion's CHECKPOINT take a while: the window this test looks into.
    await su(byName(primaryName), "CREATE TABLE IF NOT EXISTS promotion_window AS SELECT g AS id, repeat('x', 500) AS pad FROM generate_series(1, 100000) g");
    await eventually(async () => ((await su<{ n: number }>(target, "SELECT count(*)::int AS n FROM pg_class WHERE relname = 'promotion_window'").catch(() => []))[0]?.n === 1 ? true : undefined), 60_000, 'the table replayed');
    const onReplica = await session();
    switchTo(target.name);
    // The first sessions an application opens once the new primary takes writes: pgim's promotion is still busy
    // then (its CHECKPOINT, then the end of the replica's sessions), which used to end these too.
    for (const deadline = Date.now() + 30_000; ; ) {
      const probe = await session().catch(() => undefined);
      const writable = (await probe?.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r').catch(() => undefined))?.rows[0]?.r === false;
      await probe?.end().catch(() => undefined);
      if (writable) break;
      assert.ok(Date.now() < deadline, `${target.name} not writable within 30 s`);
    }
    const onPrimary = [];
    for (let n = 0; n < 5; n++) onPrimary.push(await session());
    await eventually(async () => ((await alive(onReplica)) ? undefined : true), 30_000, 'the session opened on the replica ended');
    for (const [n, client] of onPrimary.entries()) {
      assert.ok(await alive(client), `session ${n + 1} opened on the writable new primary was ended`);
      await client.end();
    }
    await settle(target.name, cluster.instances.map((i) => i.name).filter((n) => n !== target.name));
  });

  it('fails over: the primary is killed, a replica promotes, the old one rejoins by pg_rewind', async () => {
    const primaryName = (await Promise.all(cluster.instances.map(async (i) => ((await inRecovery(i)) === false ? i.name : undefined)))).find(Boolean)!;
    const dead = byName(primaryName);
    await query(dead.ports.pgPort, 'app', secrets.appPassword, 'INSERT INTO ledger DEFAULT VALUES');
    dead.pgim!.signal('SIGKILL');
    await dead.pgim!.waitExit();
    const target = primaryName === 'itest-3' ? 'itest-2' : 'itest-3';
    const other = cluster.instances.map((i) => i.name).find((n) => n !== target && n !== primaryName)!;
    await eventually(() => Promise.resolve(switchTo(target, true)), 15_000, 'the failover command');
    await settle(target, [other]);
    const restarted = cluster.start(dead);
    await restarted.waitReady(120_000);
    await settle(target, [other, primaryName]);
    assert.ok(restarted.lines.some((l) => l.includes('"logger":"pg_rewind"')), 'rejoined through pg_rewind');
    assert.ok(!restarted.lines.some((l) => l.includes('"logger":"pg_basebackup"')), 'no new base backup');
  });

  const setFence = async (value: string | undefined): Promise<void> => {
    const file = join(cluster.configDir, 'cluster.yaml');
    const doc = parseDocument(await readFile(file, 'utf8'));
    if (value === undefined) doc.deleteIn(['metadata', 'annotations', 'cnpg.io/fencedInstances']);
    else doc.setIn(['metadata', 'annotations', 'cnpg.io/fencedInstances'], value);
    await writeFile(`${file}.tmp`, doc.toString());
    execFileSync('mv', [`${file}.tmp`, file]);
  };
  const currentPrimary = async (): Promise<ClusterInstance> =>
    (await Promise.all(cluster.instances.map(async (i) => ((await inRecovery(i)) === false ? i : undefined)))).find(Boolean)!;

  it('fences an instance (cnpg.io/fencedInstances) and lifts the fence', async () => {
    const setAnnotation = setFence;
    const replica = (await Promise.all(cluster.instances.map(async (i) => ((await inRecovery(i)) === true ? i : undefined)))).find(Boolean)!;
    await setAnnotation(JSON.stringify([replica.name]));
    await eventually(async () => {
      const doc = (await (await fetch(`${replica.pgim!.statusUrl}/pg/status`)).json()) as { phase?: string };
      return doc.phase === 'fenced' ? true : undefined;
    }, 90_000, `${replica.name} fenced`);
    assert.equal(await inRecovery(replica), undefined, 'postgres is stopped while fenced');
    await setAnnotation(undefined);
    await eventually(async () => ((await inRecovery(replica)) === true ? true : undefined), 90_000, `${replica.name} back`);
  });

  it('rewinds a replica whose history forked from the new primary (it had WAL the promoted replica never got)', async () => {
    const primary = await currentPrimary();
    const [ahead, behind] = cluster.instances.filter((i) => i !== primary);
    assert.ok(ahead && behind);
    // `behind` stops (fenced) while `ahead` keeps receiving: after the old primary dies, their histories differ.
    await setFence(JSON.stringify([behind.name]));
    await eventually(async () => ((await inRecovery(behind)) === undefined ? true : undefined), 30_000, `${behind.name} stopped`);
    await query(primary.ports.pgPort, 'app', secrets.appPassword, 'CREATE TABLE IF NOT EXISTS fork_probe (n int)');
    await query(primary.ports.pgPort, 'app', secrets.appPassword, 'INSERT INTO fork_probe SELECT generate_series(1, 500)');
    const lsn = (await su<{ lsn: string }>(primary, 'SELECT pg_current_wal_lsn()::text AS lsn'))[0]?.lsn ?? '';
    await eventually(async () => {
      const rows = await su<{ ok: boolean }>(ahead, `SELECT pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn AS ok`);
      return rows[0]?.ok === true ? true : undefined;
    }, 30_000, `${ahead.name} replayed the old primary's last WAL`);
    primary.pgim!.signal('SIGKILL');
    await primary.pgim!.waitExit();
    await setFence(undefined);
    await eventually(async () => ((await inRecovery(behind)) === true ? true : undefined), 30_000, `${behind.name} back as a replica`);
    await eventually(() => Promise.resolve(switchTo(behind.name, true)), 15_000, 'the failover command');
    // `ahead` cannot stream from `behind` (its WAL is past the fork point): pgim must notice and rewind it. Its WAL
    // receiver reconnects again and again meanwhile, each time looking "streaming" for a moment, so the proof of
    // healing is the rewind and then a row written on the new primary arriving.
    const logged = (text: string): Promise<true | undefined> => Promise.resolve(ahead.pgim!.lines.some((l) => l.includes(text)) ? true : undefined);
    await eventually(() => logged('its history forked'), 90_000, `${ahead.name} reporting the fork`);
    await eventually(() => logged('"logger":"pg_rewind"'), 90_000, `${ahead.name} running pg_rewind`);
    await settle(behind.name, [ahead.name]);
    // fork_probe's rows never reached `behind`: the new history has its own table.
    await query(behind.ports.pgPort, 'app', secrets.appPassword, 'CREATE TABLE healed AS SELECT 1 AS n');
    await eventually(async () => {
      const rows = await su<{ n: number }>(ahead, 'SELECT n FROM healed').catch(() => []);
      return rows[0]?.n === 1 ? true : undefined;
    }, 60_000, `${ahead.name} replaying the new primary's writes`);
    const restarted = cluster.start(primary);
    await restarted.waitReady(120_000);
    await settle(behind.name, [ahead.name, primary.name]);
  });
});
