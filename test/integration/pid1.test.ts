import { strict as assert } from 'node:assert';
import { execFileSync, spawn } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, stat, symlink, writeFile, rename } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { eventually, freePort, handToPostgres, isRoot, removeTempDir, sleep } from '../../test-kit/env.js';
import { connect, killPostmaster, PgimProcess, pgimEntry, postmasterPid, prepareInstance, query, runAsPid1, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';
import { descendants, isGone } from '../../test-kit/proc.js';

const secrets = { appPassword: 'pid1-app-pw', superuserPassword: 'pid1-su-pw' };

function setup(name: string): Promise<{ base: string; paths: PgimPaths; ports: PgimPorts }> {
  return prepareInstance(name, secrets);
}

async function statusOf(ports: PgimPorts): Promise<{ postmasterPid: number; restartCount: number; timeLineID: number }> {
  const res = await fetch(`http://127.0.0.1:${ports.statusPort}/pg/status`);
  return (await res.json()) as { postmasterPid: number; restartCount: number; timeLineID: number };
}

describe('PID 1 duties and crash safety (real PostgreSQL 15)', function () {
  let base: string;
  let paths: PgimPaths;
  let ports: PgimPorts;
  let pgim: PgimProcess | undefined;

  beforeEach(async () => {
    ({ base, paths, ports } = await setup('pid1'));
  });

  afterEach(async () => {
    if (pgim) {
      pgim.signal('SIGKILL');
      pgim = undefined;
    }
    await killPostmaster(paths.pgdata);
    await sleep(200);
    await removeTempDir(base);
  });

  it('as PID 1: 10 postmaster crashes and restarts leave zero zombies; SIGTERM stops everything', async function () {
    if (!isRoot) this.skip(); // a PID namespace needs root; CI runs as root
    const { child, output, exited } = runAsPid1(paths, ports, { PGIM_RESTART_DELAY_MS: '50' });
    try {
      await eventually(async () => ((await fetch(`http://127.0.0.1:${ports.statusPort}/readyz`)).status === 200 ? true : undefined), 60_000, 'ready');
      // unshare -> pgim (PID 1 inside) -> postmaster: find pgim's host PID.
      const pgimHostPid = (await descendants(child.pid!)).find((p) => p.comm === 'node')?.pid;
      assert.ok(pgimHostPid, 'pgim runs inside the namespace');
      const inside = execFileSync('cat', [`/proc/${pgimHostPid}/status`], { encoding: 'utf8' });
      assert.match(inside, /^NSpid:\s+\d+\s+1$/m, 'pgim is PID 1 in its namespace');
      for (let crash = 1; crash <= 10; crash++) {
        // Orphaned backends are re-parented to pgim too: name the postmaster by its PID inside the namespace.
        const inNamespace = (await statusOf(ports)).postmasterPid;
        let postmaster: number | undefined;
        for (const p of await descendants(pgimHostPid)) {
          const nspid = /^NSpid:\s+(\d+)\s+(\d+)$/m.exec(await readFile(`/proc/${p.pid}/status`, 'utf8').catch(() => ''));
          if (nspid?.[2] === String(inNamespace)) postmaster = p.pid;
        }
        assert.ok(postmaster, `a postmaster before crash ${crash}`);
        process.kill(postmaster, 'SIGKILL');
        await eventually(async () => {
          const s = await statusOf(ports);
          return s.restartCount === crash && (await fetch(`http://127.0.0.1:${ports.statusPort}/readyz`)).status === 200 ? true : undefined;
        }, 60_000, `recovery after crash ${crash}`);
      }
      await eventually(async () => {
        const zombies = (await descendants(pgimHostPid)).filter((p) => p.state === 'Z');
        return zombies.length === 0 ? true : undefined;
      }, 10_000, 'no zombies under pgim');
      const final = await eventually(async () => {
        const s = await statusOf(ports).catch(() => undefined);
        return s?.timeLineID === undefined ? undefined : s;
      }, 30_000, 'a status after recovery');
      assert.equal(final.timeLineID, 1, 'ten crash recoveries, no new timeline');
      // To a namespace's init the kernel delivers only signals it handles: pgim must handle SIGTERM as PID 1.
      process.kill(pgimHostPid, 'SIGTERM');
      assert.equal(await Promise.race([exited, sleep(60_000).then(() => 'timeout')]), 0, output.join('').slice(-2000));
      assert.deepEqual(await descendants(child.pid!), []);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('kill -9 of pgim: postgres is gone within 2 s, and the next pgim run starts normally', async () => {
    pgim = new PgimProcess('run', paths, ports);
    await pgim.waitReady();
    await query(ports.pgPort, 'app', secrets.appPassword, 'CREATE TABLE kept (x int); INSERT INTO kept VALUES (1)');
    const postmaster = (await postmasterPid(paths.pgdata))!;
    const killedAt = Date.now();
    pgim.signal('SIGKILL');
    await eventually(async () => ((await isGone(postmaster)) ? true : undefined), 5_000, 'postmaster gone');
    const took = Date.now() - killedAt;
    assert.ok(took < 2_000, `postmaster stopped ${took} ms after pgim died`);
    pgim = new PgimProcess('run', paths, ports);
    await pgim.waitReady();
    const rows = await query<{ x: number }>(ports.pgPort, 'app', secrets.appPassword, 'SELECT x FROM kept');
    assert.deepEqual(rows, [{ x: 1 }]);
  });

  it('a postmaster.pid naming a PID now used by another program is stale; a live one is never deleted', async () => {
    pgim = new PgimProcess('init', paths, ports);
    assert.equal((await pgim.waitExit()).code, 0);
    // Another program with a PID and a start time that do not match the file's.
    const other = spawn('sleep', ['30']);
    const fake = [String(other.pid), paths.pgdata, String(Math.floor(Date.now() / 1000) - 3600), String(ports.pgPort), join(paths.runtimeDir, 'run'), '127.0.0.1', '0 0', 'ready   ', ''].join('\n');
    await writeFile(join(paths.pgdata, 'postmaster.pid'), fake);
    await handToPostgres(join(paths.pgdata, 'postmaster.pid'));
    try {
      pgim = new PgimProcess('run', paths, ports);
      await pgim.waitReady();
      assert.ok(pgim.lines.some((l) => l.includes('PID reused by another process (sleep)')), pgim.output.slice(-3000));
      assert.equal(other.exitCode, null, 'the other program was left alone');
      // A second pgim on the same PGDATA: the live postmaster is neither deleted nor doubled.
      const livePid = (await postmasterPid(paths.pgdata))!;
      const ports2 = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
      const second = new PgimProcess('run', paths, ports2);
      assert.equal((await second.waitExit()).code, 1);
      assert.ok(second.output.includes(`is in use by postmaster ${livePid}, supervised by process ${pgim.pid}`), second.output.slice(-1500));
      assert.equal(await postmasterPid(paths.pgdata), livePid, 'postmaster.pid kept');
      assert.ok(!(await isGone(livePid)), 'the first postmaster still runs');
      await (await connect(ports.pgPort, 'app', secrets.appPassword)).end();
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('pgim init with TLS Secrets: the certificates are written before the bootstrap starts postgres with ssl on', async () => {
    execFileSync(process.execPath, [pgimEntry, 'certs', '--cluster', 'itest', '--instances', '1', '--out', join(paths.configDir, 'secrets')], { stdio: 'ignore' });
    await handToPostgres(paths.configDir);
    pgim = new PgimProcess('init', paths, ports);
    assert.equal((await pgim.waitExit()).code, 0, pgim.output.slice(-2000));
    pgim = undefined;
    assert.equal(
      await readFile(join(paths.runtimeDir, 'certificates', 'server.crt'), 'utf8'),
      await readFile(join(paths.configDir, 'secrets', 'itest-server', 'tls.crt'), 'utf8'),
    );
  });

  it('refuses to start with exit code 4 when pg_wal cannot take one more segment', async function () {
    if (!isRoot) this.skip(); // mounting a small tmpfs needs root
    pgim = new PgimProcess('init', paths, ports);
    assert.equal((await pgim.waitExit()).code, 0);
    pgim = undefined;
    const walMount = join(base, 'walfs');
    await mkdir(walMount);
    const walDir = join(paths.pgdata, 'pg_wal');
    // Room for the segments there (with archive_mode = on the bootstrap's shutdown switches to a second one) plus 8 MiB.
    const segments = (await readdir(walDir)).filter((f) => /^[0-9A-F]{24}$/.test(f)).length;
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${segments * 16 + 8}m,mode=0700`, 'tmpfs', walMount]);
    try {
      execFileSync('cp', ['-a', `${walDir}/.`, walMount]);
      await rename(walDir, `${walDir}.orig`);
      await symlink(walMount, walDir);
      await handToPostgres(walMount);
      // Leave less than one 16 MiB segment free.
      execFileSync('dd', ['if=/dev/zero', `of=${join(walMount, 'filler')}`, 'bs=1M', 'count=6'], { stdio: 'ignore' });
      const run = new PgimProcess('run', paths, ports);
      const exit = await run.waitExit(60_000);
      assert.equal(exit.code, 4, run.output.slice(-2000));
      assert.match(run.output, /no space left for WAL/);
    } finally {
      execFileSync('umount', ['-l', walMount]);
    }
  });

  it('SIGTERM during initdb: exits non-zero; the next start initialises cleanly', async () => {
    const first = new PgimProcess('run', paths, ports);
    await first.waitForLog(/"logger":"initdb"/, 30_000);
    first.signal('SIGTERM');
    const exit = await first.waitExit();
    assert.notEqual(exit.code, 0);
    pgim = new PgimProcess('run', paths, ports);
    await pgim.waitReady();
    await (await connect(ports.pgPort, 'app', secrets.appPassword)).end();
  });

  it('after an interrupted bootstrap, a cluster with a valid control file is moved aside, never deleted', async () => {
    pgim = new PgimProcess('init', paths, ports);
    assert.equal((await pgim.waitExit()).code, 0);
    await writeFile(join(paths.pgdata, 'evidence.txt'), 'keep me');
    await handToPostgres(base); // PGDATA's parent is writable, as a volume's root is
    // What an interrupted bootstrap leaves: its marker beside PGDATA.
    await writeFile(join(dirname(paths.pgdata), `.${basename(paths.pgdata)}.pgim-bootstrap`), 'x');
    pgim = new PgimProcess('run', paths, ports);
    await pgim.waitReady();
    const aside = (await readdir(base)).filter((n) => n.startsWith('pgdata_'));
    assert.equal(aside.length, 1, 'moved aside');
    assert.equal(await readFile(join(base, aside[0]!, 'evidence.txt'), 'utf8'), 'keep me');
  });

  it('enforces PGDATA mode 0700 at start and creates the runtime layout with private modes', async () => {
    pgim = new PgimProcess('init', paths, ports);
    assert.equal((await pgim.waitExit()).code, 0);
    await chmod(paths.pgdata, 0o755);
    pgim = new PgimProcess('run', paths, ports);
    await pgim.waitReady();
    assert.equal((await stat(paths.pgdata)).mode & 0o777, 0o700);
    for (const dir of ['run', 'log', 'certificates', 'tmp']) {
      assert.equal((await stat(join(paths.runtimeDir, dir))).mode & 0o777, 0o700, dir);
    }
    for (const fifo of ['postgres.csv', 'postgres']) {
      const info = await stat(join(paths.runtimeDir, 'log', fifo));
      assert.ok(info.isFIFO(), fifo);
      assert.equal(info.mode & 0o777, 0o600);
    }
  });
});
