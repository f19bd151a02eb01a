import { strict as assert } from 'node:assert';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { processesInDirectory } from '../../src/process/proc.js';
import { writeConfigDir } from '../../test-kit/config.js';
import { freePort, handToPostgres, isRoot, makeTempDir, postgresUser, removeTempDir, userIds, eventually } from '../../test-kit/env.js';
import { connect, killPostmaster, PgimProcess, postmasterPid, query, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';

const secrets = { appPassword: 'app-pw-7f3a', superuserPassword: 'super-pw-91c2' };

interface StatusBody {
  isPrimary: boolean;
  systemID: string;
  timeLineID: number;
  restartCount: number;
  postmasterPid: number;
  postmasterStartTicks: string;
  sessionID: string;
  pod: { metadata: { name: string } };
}

async function pgStatus(pgim: PgimProcess): Promise<StatusBody> {
  const res = await fetch(`${pgim.statusUrl}/pg/status`);
  assert.equal(res.status, 200);
  return (await res.json()) as StatusBody;
}

async function processUid(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const uid = /^Uid:\s+(\d+)/m.exec(status)?.[1];
  return Number(uid);
}

describe('foundation: one supervised instance from a config folder (real PostgreSQL 15)', function () {
  let base: string;
  let paths: PgimPaths;
  let ports: PgimPorts;
  let pgim: PgimProcess | undefined;

  before(async () => {
    base = await makeTempDir('foundation');
    paths = { configDir: join(base, 'config'), pgdata: join(base, 'pgdata'), runtimeDir: join(base, 'runtime') };
    ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
    await writeConfigDir(paths.configDir, { smartShutdownTimeout: 2 }, secrets);
    await handToPostgres(paths.configDir);
  });

  after(async () => {
    if (pgim) {
      pgim.signal('SIGKILL');
      await killPostmaster(paths.pgdata);
    }
    await removeTempDir(base);
  });

  it('bootstraps an empty PGDATA; the owner logs in over TCP with its password', async () => {
    pgim = new PgimProcess('run', paths, ports);
    await pgim.waitReady();
    const rows = await query<{ user: string; db: string; ssl: boolean }>(
      ports.pgPort, 'app', secrets.appPassword, 'SELECT current_user AS user, current_database() AS db',
    );
    assert.deepEqual(rows, [{ user: 'app', db: 'app' }]);
    assert.equal((await stat(paths.pgdata)).mode & 0o777, 0o700);
    const status = await pgStatus(pgim);
    assert.equal(status.isPrimary, true);
    assert.equal(status.timeLineID, 1);
    assert.equal(status.pod.metadata.name, 'itest-1');
  });

  it('stores a SCRAM verifier for the owner, never the cleartext', async () => {
    const client = await connect(ports.pgPort, 'app', secrets.appPassword);
    try {
      // The owner cannot read pg_authid; the hba rules and the successful login above already prove SCRAM.
      const hba = await readFile(join(paths.pgdata, 'pg_hba.conf'), 'utf8');
      assert.match(hba, /^host all all all scram-sha-256$/m);
      assert.doesNotMatch(hba, /^host\S*\s.*\btrust\b/m, 'no trust rule for TCP');
    } finally {
      await client.end();
    }
    assert.ok(!pgim!.output.includes(secrets.appPassword), 'the password never appears in pgim output');
  });

  it('refuses the superuser by password while enableSuperuserAccess is false', async () => {
    await assert.rejects(connect(ports.pgPort, 'postgres', secrets.superuserPassword, 'postgres'), /password authentication failed/);
  });

  it('runs every postgres process as the non-root user when started as root', async function () {
    if (!isRoot) this.skip();
    const expected = userIds(postgresUser).uid;
    const pids = await processesInDirectory(paths.pgdata);
    assert.ok(pids.length >= 4, `postmaster and its auxiliary processes (found ${pids.length})`);
    for (const pid of pids) assert.equal(await processUid(pid), expected, `pid ${pid}`);
    assert.equal(await processUid(pgim!.pid), expected, 'pgim itself dropped root');
  });

  it('restarts postgres in place after kill -9 of the postmaster: rows intact, same timeline', async () => {
    const before = await pgStatus(pgim!);
    await query(ports.pgPort, 'app', secrets.appPassword, 'CREATE TABLE survivors (id int PRIMARY KEY); INSERT INTO survivors SELECT generate_series(1, 1000)');
    process.kill(before.postmasterPid, 'SIGKILL');
    await eventually(
      async () => {
        const s = await pgStatus(pgim!).catch(() => undefined);
        return s !== undefined && s.postmasterPid !== before.postmasterPid ? s : undefined;
      },
      30_000,
      'a new postmaster',
    );
    await pgim!.waitReady(); // crash recovery done
    const after = await pgStatus(pgim!);
    const rows = await query<{ n: string }>(ports.pgPort, 'app', secrets.appPassword, 'SELECT count(*) AS n FROM survivors');
    assert.equal(rows[0]?.n, '1000');
    assert.equal(after.timeLineID, before.timeLineID, 'crash recovery creates no timeline');
    assert.equal(after.systemID, before.systemID);
    assert.equal(after.restartCount, 1);
    assert.equal(after.sessionID, before.sessionID, 'pgim itself kept running');
    assert.notEqual(after.postmasterStartTicks, before.postmasterStartTicks);
    await pgim!.waitForLog(/postmaster exited unexpectedly/);
  });

  it('stops cleanly on SIGTERM with an open transaction and idle sessions: exit 0, no postgres left', async () => {
    const idle = await Promise.all([1, 2, 3].map(() => connect(ports.pgPort, 'app', secrets.appPassword)));
    const inTx = await connect(ports.pgPort, 'app', secrets.appPassword);
    await inTx.query('BEGIN');
    await inTx.query('INSERT INTO survivors VALUES (5000)');
    const exit = await pgim!.stop();
    pgim = undefined;
    await Promise.all([...idle, inTx].map((c) => c.end().catch(() => undefined)));
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.deepEqual(await processesInDirectory(paths.pgdata), []);
    assert.equal(await postmasterPid(paths.pgdata), undefined, 'postmaster.pid removed by a clean shutdown');
  });

  it('starts again on the existing PGDATA without re-initialising it', async () => {
    const controlBefore = await readFile(join(paths.pgdata, 'global', 'pg_control'));
    pgim = new PgimProcess('run', paths, ports);
    await pgim.waitReady();
    const rows = await query<{ n: string }>(ports.pgPort, 'app', secrets.appPassword, 'SELECT count(*) AS n FROM survivors');
    assert.equal(rows[0]?.n, '1000', 'committed rows kept, the open transaction rolled back');
    assert.ok(!pgim.output.includes('bootstrapping'), 'no bootstrap on an existing cluster');
    const status = await pgStatus(pgim);
    assert.equal(status.systemID, controlBefore.readBigUInt64LE(0).toString(), 'same cluster (system identifier)');
    assert.equal(status.timeLineID, 1);
    assert.deepEqual((await pgim.stop()).code, 0);
    pgim = undefined;
  });

  it('logs JSON lines with CNPG keys, child output under the program name', () => {
    // Checked on the stopped process's full output of the previous test run is enough; re-run quickly here.
    const sample = new PgimProcess('render', paths, ports, ['--out', join(base, 'rendered')]);
    return sample.waitExit().then((exit) => {
      assert.equal(exit.code, 0);
      const record = sample.records().find((r) => r.msg === 'rendered');
      assert.ok(record, sample.output);
      for (const key of ['level', 'ts', 'logger', 'msg', 'logging_pod']) assert.ok(key in record, key);
      assert.equal(record.level, 'info');
      assert.equal(record.logging_pod, 'itest-1');
      assert.match(String(record.ts), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$/);
    });
  });

  it('keeps the rendered files private (0600) inside PGDATA', async () => {
    for (const name of ['postgresql.conf', 'custom.conf', 'override.conf', 'pg_hba.conf', 'pg_ident.conf']) {
      assert.equal((await stat(join(paths.pgdata, name))).mode & 0o777, 0o600, name);
    }
    assert.ok((await readdir(paths.pgdata)).includes('PG_VERSION'));
  });
});
