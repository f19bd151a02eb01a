// Process and signals (issue 24, items 1-3): no signal opens Node's inspector, no signal pgim does not use ends or
// stops it, and PID 1 without the native addon refuses to start instead of leaving zombies; `npm run build` builds
// the addon. Real pgim and PostgreSQL 15; root only where a PID namespace is needed (CI runs as root).
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, readlink, rm, stat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { eventually, isRoot, removeTempDir, sleep } from '../../test-kit/env.js';
import { PgimProcess, postmasterPid, prepareInstance, runAsPid1, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';
import { repoRoot } from '../static/paths.js';

const run = promisify(execFile);
const secrets = { appPassword: 'faults-process-app', superuserPassword: 'faults-process-su' };

function setup(name: string): Promise<{ base: string; paths: PgimPaths; ports: PgimPorts }> {
  return prepareInstance(name, secrets);
}

/** The TCP ports `pid` listens on (IPv4 and IPv6), from its socket inodes and /proc/net/tcp{,6}. */
async function listeningPorts(pid: number): Promise<number[]> {
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode !== undefined) inodes.add(inode);
  }
  const ports: number[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of (await readFile(table, 'utf8')).split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is field 1 (ADDR:PORT in hex), st is field 3 (0A = LISTEN), inode is field 9.
      if (fields[3] === '0A' && inodes.has(fields[9] ?? '')) ports.push(parseInt(fields[1]?.split(':')[1] ?? '', 16));
    }
  }
  return ports.sort((a, b) => a - b);
}

/** The process state letter from /proc/<pid>/stat: R, S, D, T (stopped), Z... */
async function processState(pid: number): Promise<string> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8');
  return text.slice(text.lastIndexOf(')') + 2).split(' ')[0] ?? '';
}

describe('faults: signals (real PostgreSQL 15)', function () {
  let base: string;
  let paths: PgimPaths;
  let ports: PgimPorts;
  let pgim: PgimProcess | undefined;
  let postmaster: number | undefined;

  before(async () => {
    ({ base, paths, ports } = await setup('faults-signals'));
    pgim = new PgimProcess('run', paths, ports);
    await pgim.waitReady();
    postmaster = await postmasterPid(paths.pgdata);
  });

  after(async () => {
    if (pgim) await pgim.stop().catch(() => undefined);
    await removeTempDir(base);
  });

  /** pgim still runs (not stopped), serves /readyz, and its postmaster is the same one. */
  async function assertUnharmed(running: PgimProcess, what: string): Promise<void> {
    const exited = await Promise.race([running.exited, sleep(300).then(() => undefined)]);
    assert.equal(exited, undefined, `${what}: pgim exited ${JSON.stringify(exited)}:\n${running.output.slice(-1500)}`);
    assert.notEqual(await processState(running.pid), 'T', `${what}: pgim is stopped`);
    assert.equal((await fetch(`${running.statusUrl}/readyz`)).status, 200, `${what}: /readyz`);
    assert.equal(await postmasterPid(paths.pgdata), postmaster, `${what}: the postmaster was not restarted`);
  }

  it('item 1: SIGUSR1 never opens the inspector: no new listening port, nothing on 9229, pgim keeps running', async () => {
    assert.ok(pgim);
    const before = await listeningPorts(pgim.pid);
    assert.ok(before.includes(ports.statusPort), `the port check sees pgim's own listeners: ${before.join(',')}`);
    for (let i = 0; i < 3; i++) pgim.signal('SIGUSR1');
    // Node opens the inspector on its own thread, shortly after the signal: give it every chance to show up.
    await sleep(1500);
    assert.doesNotMatch(pgim.output, /Debugger listening|inspector/i);
    assert.deepEqual(await listeningPorts(pgim.pid), before, 'no listener was added');
    assert.ok(!(await listeningPorts(pgim.pid)).includes(9229));
    await pgim.waitForLog(/received SIGUSR1, which pgim does not use: ignored/);
    await assertUnharmed(pgim, 'SIGUSR1');
  });

  it('item 2: every signal pgim does not use is ignored (logged) or harmless; none ends or stops pgim or postgres', async () => {
    assert.ok(pgim);
    const logged: NodeJS.Signals[] = [
      'SIGUSR2', 'SIGALRM', 'SIGVTALRM', 'SIGPROF', 'SIGIO', 'SIGPWR', 'SIGSTKFLT', 'SIGXCPU', 'SIGXFSZ', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU',
    ];
    for (const signal of logged) {
      pgim.signal(signal);
      await assertUnharmed(pgim, signal);
      const line = `received ${signal}, which pgim does not use: ignored`;
      await eventually(() => Promise.resolve(pgim?.lines.some((l) => l.includes(line)) === true ? true : undefined), 10_000, line);
    }
    // The real-time signals (no names in Node): the addon's no-op handler.
    for (const signal of [34, 40, 64]) {
      process.kill(pgim.pid, signal);
      await assertUnharmed(pgim, `signal ${String(signal)} (real-time)`);
    }
    // Ignored by Node or by default: still nothing may happen.
    for (const signal of ['SIGPIPE', 'SIGWINCH', 'SIGURG', 'SIGCONT', 'SIGCHLD'] as const) {
      pgim.signal(signal);
      await assertUnharmed(pgim, signal);
    }
    // SIGHUP is used: a reload, forwarded to the postmaster.
    pgim.signal('SIGHUP');
    await assertUnharmed(pgim, 'SIGHUP');
  });

  it('item 2: SIGQUIT is a stop request like SIGTERM: a clean stop, exit code 0', async () => {
    assert.ok(pgim);
    const running = pgim;
    pgim = undefined;
    running.signal('SIGQUIT');
    assert.equal((await running.waitExit(60_000)).code, 0, running.output.slice(-2000));
  });
});

describe('faults: PID 1 and the native addon', function () {
  let base: string;
  let paths: PgimPaths;
  let ports: PgimPorts;

  beforeEach(async () => {
    ({ base, paths, ports } = await setup('faults-pid1'));
  });

  afterEach(async () => {
    await removeTempDir(base);
  });

  it('item 3: as PID 1 without the addon, pgim refuses to start (exit 1, a clear message, nothing created)', async function () {
    if (!isRoot) this.skip(); // a PID namespace needs root; CI runs as root
    const { child, output, exited } = runAsPid1(paths, ports, { PGIM_NATIVE_ADDON: join(base, 'no-such-addon.node') });
    try {
      const code = await Promise.race([exited, sleep(60_000).then(() => 'still running after 60 s')]);
      assert.equal(code, 1, output.join(''));
      assert.match(output.join(''), /pgim runs as PID 1 but cannot reap orphaned processes: pgim's native addon is not built/);
      await assert.rejects(stat(paths.pgdata), /ENOENT/, 'PGDATA was not created');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('item 3: not PID 1, the addon missing is a warning and pgim runs (child subreaping is a bonus there)', async () => {
    const pgim = new PgimProcess('run', paths, ports, [], { PGIM_NATIVE_ADDON: join(base, 'no-such-addon.node') });
    try {
      await pgim.waitReady();
      await pgim.waitForLog(/"level":"warning".*zombie reaping is off/);
    } finally {
      assert.equal((await pgim.stop()).code, 0);
    }
  });

  it('item 3: `npm run build` builds the native addon (what `npm ci && npm run build` gives a fresh clone)', async () => {
    const copy = join(base, 'clone');
    await mkdir(copy);
    // The sources tsc compiles for the product (tests and bench are not needed for it), without any build output.
    await run('cp', ['-r', ...['package.json', 'tsconfig.json', 'cmd', 'src', 'scripts', 'native'].map((entry) => join(repoRoot, entry)), copy]);
    await rm(join(copy, 'native', 'build'), { recursive: true, force: true });
    await symlink(join(repoRoot, 'node_modules'), join(copy, 'node_modules'));
    await run('npm', ['run', 'build'], { cwd: copy, maxBuffer: 16 * 1024 * 1024 });
    const addon = join(copy, 'native', 'build', 'pgim_native.node');
    assert.ok((await stat(addon)).isFile(), 'npm run build left native/build/pgim_native.node');
    const { stdout } = await run(process.execPath, ['-e', `console.log(Object.keys(require(${JSON.stringify(addon)})).includes('reap'))`]);
    assert.equal(stdout.trim(), 'true', 'the addon loads and has reap()');
  });
});
