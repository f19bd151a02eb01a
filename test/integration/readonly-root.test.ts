import { strict as assert } from 'node:assert';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { access, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { writeClusterYaml, writeConfigDir, type TestClusterOptions } from '../../test-kit/config.js';
import { eventually, freePort, handToPostgres, isRoot, makeTempDir, postgresUser, removeTempDir, sleep, userIds } from '../../test-kit/env.js';
import { killPostmaster, pgimArgs, pgimEntry, postmasterPid, query, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';

/**
 * The container's read-only root filesystem, reproduced without Docker: each process runs in its own mount namespace
 * where every mount is read-only (a per-mount flag, so the host is untouched) except bind mounts of the folders a
 * pgim container may write: its PGDATA volume (PGDATA's parent), its runtime dir and TMPDIR. The config folder is
 * bound read-only, as a Secret or ConfigMap volume is. /proc, /sys and /dev (PostgreSQL's POSIX shared memory in
 * /dev/shm) stay as they are, as in a container. Any write elsewhere fails with EROFS.
 */
const NAMESPACE_SETUP = `
set -f
writable=$(printf '%s' "$PGIM_RO_WRITABLE" | tr ':' ' ')
for d in $writable; do mount --bind "$d" "$d"; done
for d in $(printf '%s' "$PGIM_RO_READONLY" | tr ':' ' '); do mount --bind "$d" "$d"; mount -o remount,bind,ro "$d"; done
mounts=$(cut -d' ' -f5,6 /proc/self/mountinfo)
printf '%s\\n' "$mounts" | while read -r target opts; do
  case "$target" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue ;; esac
  case ",$opts," in *,rw,*) ;; *) continue ;; esac
  keep=
  for d in $writable; do if [ "$target" = "$d" ]; then keep=1; fi; done
  if [ -z "$keep" ]; then mount -o remount,bind,ro "$target"; fi
done
unset PGIM_RO_WRITABLE PGIM_RO_READONLY
exec "$@"
`;

const secrets = { appPassword: 'rofs-app-pw', superuserPassword: 'rofs-su-pw' };
// EROFS as the kernel says it, PostgreSQL's wording, and Node's: a recursive mkdir under a read-only mount reports
// ENOENT (verified on Node 20), so that form counts too; "pgim failed" is pgim's own last word before exit 1.
const readOnlyPattern = /read-only file system|EROFS|ENOENT: no such file or directory, mkdir|"msg":"pgim failed"/i;

interface Instance {
  name: string;
  /** The PGDATA volume (PGDATA's parent, as /var/lib/postgresql/data is in the image). */
  volume: string;
  tmp: string;
  paths: PgimPaths;
  ports: PgimPorts;
  child?: ChildProcess;
  lines: string[];
  exited?: Promise<number | null>;
}

interface Status {
  restartCount: number;
  isPrimary: boolean;
}

/** Resolves with the promise's value, or with 'timeout' after `ms` (the timer never outlives the wait). */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => {
        resolve('timeout');
      }, ms);
    });
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** argv run inside a read-only-root mount namespace where only `writable` can be written. */
function inReadOnlyRoot(writable: string[], readOnly: string[], argv: string[], env: NodeJS.ProcessEnv): ChildProcess {
  return spawn('unshare', ['--mount', '--propagation', 'private', '--', '/bin/sh', '-euc', NAMESPACE_SETUP, 'readonly-root', ...argv], {
    env: { ...process.env, ...env, PGIM_RO_WRITABLE: writable.join(':'), PGIM_RO_READONLY: readOnly.join(':') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

describe('read-only root filesystem: pgim writes only to the PGDATA volume, the runtime dir and TMPDIR (real PostgreSQL 15)', function () {
  let base = '';
  let configDir = '';
  let cluster: TestClusterOptions;
  let asPostgres: string[] = [];
  const instances: Instance[] = [];

  const statusOf = async (i: Instance): Promise<Status> => (await (await fetch(`http://127.0.0.1:${i.ports.statusPort}/pg/status`)).json()) as Status;
  const ready = async (i: Instance): Promise<boolean> => (await fetch(`http://127.0.0.1:${i.ports.statusPort}/readyz`)).status === 200;
  const setting = async (i: Instance, name: string): Promise<string> =>
    (await query<{ v: string }>(i.ports.pgPort, 'app', secrets.appPassword, `SELECT current_setting('${name}') AS v`))[0]?.v ?? '';

  const start = (i: Instance): void => {
    i.lines = [];
    const child = inReadOnlyRoot(
      [i.volume, i.paths.runtimeDir, i.tmp],
      [configDir],
      [...asPostgres, process.execPath, pgimEntry, 'run', ...pgimArgs(i.paths, i.ports), '--pod-name', i.name],
      { TMPDIR: i.tmp, PGIM_LOG_LEVEL: 'debug', HOME: '/var/lib/postgresql' },
    );
    for (const stream of [child.stdout, child.stderr]) {
      if (stream) createInterface({ input: stream }).on('line', (line) => i.lines.push(line));
    }
    i.exited = new Promise((resolve) => child.once('exit', (code) => {
      resolve(code);
    }));
    i.child = child;
  };

  /** Until /readyz answers 200; fails at once, with pgim's last lines, if pgim exits first. */
  const waitReady = async (i: Instance, timeoutMs = 90_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!i.child || i.child.exitCode !== null || i.child.signalCode !== null) assert.fail(`${i.name} exited:\n${i.lines.slice(-30).join('\n')}`);
      if (await ready(i).catch(() => false)) return;
      if (Date.now() > deadline) assert.fail(`${i.name} not ready within ${String(timeoutMs)} ms:\n${i.lines.slice(-30).join('\n')}`);
      await sleep(100);
    }
  };

  before(async function () {
    if (!isRoot) {
      console.log('    SKIPPED: the read-only-root proof needs root (mount namespaces); CI runs as root');
      this.skip();
    }
    base = await makeTempDir('rofs');
    configDir = join(base, 'config');
    cluster = { smartShutdownTimeout: 1, stopDelay: 20, spec: { instances: 2 } };
    await writeConfigDir(configDir, cluster, secrets);
    await mkdir(join(configDir, 'configmaps', 'itest-hosts'), { recursive: true });
    for (const n of [1, 2]) {
      const dir = join(base, `itest-${String(n)}`);
      const volume = join(dir, 'volume');
      const instance: Instance = {
        name: `itest-${String(n)}`,
        volume,
        tmp: join(dir, 'tmp'),
        paths: { configDir, pgdata: join(volume, 'pgdata'), runtimeDir: join(dir, 'runtime') },
        ports: { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() },
        lines: [],
      };
      for (const d of [volume, instance.paths.runtimeDir, instance.tmp]) await mkdir(d, { recursive: true, mode: 0o700 });
      await writeFile(join(configDir, 'configmaps', 'itest-hosts', instance.name), `127.0.0.1:${String(instance.ports.pgPort)}`);
      instances.push(instance);
    }
    execFileSync(process.execPath, [pgimEntry, 'certs', '--cluster', 'itest', '--instances', '2', '--out', join(configDir, 'secrets')]);
    // As in the image: everything pgim may write belongs to the PostgreSQL user (fsGroup / tmpfs uid=26).
    await handToPostgres(base);
    // pgim runs as that user from its first instruction, as under `USER 26`, when it can read this build; otherwise
    // it starts as root and drops privileges itself (the same writes, plus chown of its own folders).
    try {
      execFileSync('setpriv', [`--reuid=${postgresUser}`, `--regid=${postgresUser}`, '--init-groups', '--', process.execPath, '-e', `require('fs').accessSync(${JSON.stringify(pgimEntry)})`]);
      asPostgres = ['setpriv', `--reuid=${postgresUser}`, `--regid=${postgresUser}`, '--init-groups', '--'];
    } catch {
      asPostgres = [];
    }
  });

  after(async () => {
    for (const i of instances) {
      i.child?.kill('SIGKILL');
      await killPostmaster(i.paths.pgdata);
    }
    await sleep(200);
    if (base !== '') await removeTempDir(base);
  });

  it('the harness: inside the namespace a write outside the allowed folders fails with EROFS, inside them it succeeds', async () => {
    const [i] = instances;
    assert.ok(i);
    const targets = {
      allowed: [join(i.volume, 'probe'), join(i.paths.runtimeDir, 'probe'), join(i.tmp, 'probe'), '/dev/shm/pgim-rofs-probe'],
      refused: [join(configDir, 'probe'), join(base, 'probe'), join(dirname(pgimEntry), 'probe'), '/var/tmp/pgim-rofs-probe', '/tmp/pgim-rofs-probe', '/etc/pgim-rofs-probe'],
    };
    const probe = `const fs = require('fs'); const out = {};
      for (const p of JSON.parse(process.argv[1])) { try { fs.writeFileSync(p, 'x'); fs.rmSync(p); out[p] = 'ok'; } catch (e) { out[p] = e.code; } }
      console.log(JSON.stringify(out));`;
    // As root, so that only the read-only mounts (not file permissions) can refuse a write.
    const child = inReadOnlyRoot([i.volume, i.paths.runtimeDir, i.tmp], [configDir], [process.execPath, '-e', probe, JSON.stringify([...targets.allowed, ...targets.refused])], {});
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 0, out);
    const results = JSON.parse(out) as Record<string, string>;
    for (const p of targets.allowed) assert.equal(results[p], 'ok', `${p} is writable`);
    for (const p of targets.refused) assert.equal(results[p], 'EROFS', `${p} is read-only`);
    // And the host outside the namespace is untouched.
    await access(join(base, 'probe')).then(() => assert.fail('the probe reached the host'), () => undefined);
  });

  it('bootstraps a primary and clones a replica (TLS, pg_basebackup) with / read-only', async () => {
    const [primary, replica] = instances;
    assert.ok(primary && replica);
    start(primary);
    await waitReady(primary);
    if (asPostgres.length > 0) {
      // Like the image's USER 26: pgim itself never had root in this run.
      const uids = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(await readFile(`/proc/${String(primary.child?.pid)}/status`, 'utf8'));
      assert.deepEqual(uids?.slice(1).map(Number), Array(3).fill(userIds(postgresUser).uid), 'pgim runs as the PostgreSQL user');
    } else {
      console.log(`    note: ${postgresUser} cannot read this build; pgim starts as root and drops privileges itself`);
    }
    await query(primary.ports.pgPort, 'app', secrets.appPassword, 'CREATE TABLE kept (x int); INSERT INTO kept VALUES (1)');
    start(replica);
    await waitReady(replica, 120_000);
    assert.equal((await statusOf(primary)).isPrimary, true);
    assert.equal((await statusOf(replica)).isPrimary, false);
    await eventually(async () => {
      const rows = await query<{ x: number }>(replica.ports.pgPort, 'app', secrets.appPassword, 'SELECT x FROM kept').catch(() => []);
      return rows.length === 1 ? true : undefined;
    }, 30_000, 'the row on the replica');
    // What pgim wrote, it wrote where it may: certificates and pgpass in the runtime dir, the render in PGDATA.
    assert.ok((await readdir(join(primary.paths.runtimeDir, 'certificates'))).some((f) => f.endsWith('.crt')));
    await access(join(primary.paths.runtimeDir, 'pgpass'));
    await access(join(primary.paths.pgdata, 'custom.conf'));
    await access(join(replica.paths.pgdata, 'standby.signal'));
  });

  it('applies a configuration change with a reload on both instances', async () => {
    cluster = { ...cluster, parameters: { work_mem: '7MB' } };
    await writeClusterYaml(configDir, cluster);
    for (const i of instances) {
      await eventually(async () => ((await setting(i, 'work_mem')) === '7MB' ? true : undefined), 20_000, `work_mem = 7MB on ${i.name}`);
    }
  });

  it('keeps what it wrote private: certificates, keys and pgpass 0600 in the runtime dir, PGDATA 0700', async () => {
    for (const i of instances) {
      const certificates = join(i.paths.runtimeDir, 'certificates');
      const files = await readdir(certificates);
      assert.ok(files.some((f) => f.endsWith('.key')), `${i.name}: keys were materialised`);
      for (const f of [...files.map((name) => join(certificates, name)), join(i.paths.runtimeDir, 'pgpass')]) {
        assert.equal((await stat(f)).mode & 0o777, 0o600, f);
      }
      assert.equal((await stat(i.paths.pgdata)).mode & 0o777, 0o700, i.paths.pgdata);
    }
  });

  it('restarts postgres in place after kill -9 of the primary postmaster', async () => {
    const [primary] = instances;
    assert.ok(primary);
    const pid = await postmasterPid(primary.paths.pgdata);
    assert.ok(pid !== undefined);
    process.kill(pid, 'SIGKILL');
    await eventually(async () => ((await statusOf(primary)).restartCount === 1 && (await ready(primary)) ? true : undefined), 60_000, 'the restart');
    assert.deepEqual(await query(primary.ports.pgPort, 'app', secrets.appPassword, 'SELECT x FROM kept'), [{ x: 1 }]);
  });

  it('stops cleanly on SIGTERM: exit code 0 for the replica, then the primary', async () => {
    for (const i of [...instances].reverse()) {
      i.child?.kill('SIGTERM');
      const code = await within(i.exited ?? Promise.resolve(null), 60_000);
      assert.equal(code, 0, `${i.name}:\n${i.lines.slice(-20).join('\n')}`);
    }
  });

  it('never printed a password or a private key (bootstrap, TLS, base backup, reload, crash, shutdown)', async () => {
    const secretTexts = [secrets.appPassword, secrets.superuserPassword];
    for (const secret of ['itest-ca', 'itest-server', 'itest-replication']) {
      const pem = await readFile(join(configDir, 'secrets', secret, secret === 'itest-ca' ? 'ca.key' : 'tls.key'), 'utf8');
      // Any 40-character run of the key's base64 body is enough to count as leaked.
      const body = pem.replace(/-----[^-]+-----/g, '').replace(/\s/g, '');
      for (let at = 0; at + 40 <= body.length; at += 40) secretTexts.push(body.slice(at, at + 40));
    }
    for (const i of instances) {
      const output = i.lines.join('\n');
      assert.ok(output.includes('"logger":"postgres"'), `${i.name}: PostgreSQL's log went through pgim`);
      for (const text of secretTexts) assert.ok(!output.includes(text), `${i.name} printed secret material`);
    }
  });

  it('no process reported a read-only file system: pgim, PostgreSQL and the tools it ran wrote nowhere else', () => {
    for (const i of instances) {
      const hits = i.lines.filter((line) => readOnlyPattern.test(line));
      assert.deepEqual(hits, [], `${i.name} tried to write outside its folders`);
      assert.ok(i.lines.length > 20, `${i.name} logged (its output is what this checks)`);
    }
  });
});
