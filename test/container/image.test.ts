/**
 * The image scripts/image.sh built, run by real podman the way a hardened platform runs it: read-only root, uid 26,
 * no capabilities, no privilege escalation, a data volume, the port published on 127.0.0.1 only.
 */
import { strict as assert } from 'node:assert';
import { chown, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeConfigDir } from '../../test-kit/config.js';
import { eventually, freePort, makeTempDir, removeTempDir, sleep } from '../../test-kit/env.js';
import { connect, query } from '../../test-kit/pgim.js';
import { containerPid, namespaceProcesses, pidNamespace, podman, processesIn, removeAll, requireImage, run, uniqueName } from './podman.js';

const uid = 26;

interface PgStatus {
  isPrimary?: boolean;
  systemID?: string;
  timeLineID?: number;
  restartCount?: number;
  postmasterPid?: number;
}

describe('container: the pgim image under podman (read-only, uid 26, no capabilities)', function () {
  this.timeout(600_000);
  const name = uniqueName('image');
  const volume = `${name}-data`;
  const secrets = { appPassword: `app-${name}`, superuserPassword: `su-${name}` };
  let image = '';
  let configDir = '';
  let pgPort = 0;
  let statusPort = 0;
  let firstStatus: PgStatus = {};
  const containers: string[] = [];

  const status = async (): Promise<PgStatus> => (await (await fetch(`http://127.0.0.1:${String(statusPort)}/pg/status`)).json()) as PgStatus;

  /** `podman run` with the hardening flags; returns when the container started (not yet healthy). */
  const start = async (container: string, extraEnv: string[] = []): Promise<void> => {
    containers.push(container);
    await podman([
      'run', '--detach', '--name', container,
      '--read-only', '--read-only-tmpfs=false', '--user', String(uid), '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges',
      // As compose.yaml mounts them: root's tmpfs, mode 1777 (pgim keeps its own files private inside).
      '--tmpfs', '/controller:rw,nosuid,nodev,noexec,size=64m,mode=1777',
      '--tmpfs', '/tmp:rw,nosuid,nodev,noexec,size=64m,mode=1777',
      '--volume', `${volume}:/var/lib/postgresql/data`, '--volume', `${configDir}:/etc/pgim:ro`,
      '--publish', `127.0.0.1:${String(pgPort)}:5432`, '--publish', `127.0.0.1:${String(statusPort)}:8000`,
      ...extraEnv.flatMap((e) => ['--env', e]),
      image,
    ]);
  };

  /** Runs the image's HEALTHCHECK until it passes; returns the milliseconds it took from `since`. */
  const healthy = async (container: string, since: number): Promise<number> => {
    await eventually(async () => ((await run('podman', ['healthcheck', 'run', container])).code === 0 ? true : undefined), 300_000, `${container} healthy`);
    return Date.now() - since;
  };

  before(async function () {
    image = requireImage(this);
    configDir = await makeTempDir('container-config');
    await writeConfigDir(configDir, { name: 'ctest', smartShutdownTimeout: 5, stopDelay: 30 }, secrets);
    // A Secret volume as the kubelet mounts it for fsGroup 26: the files belong to the container's user.
    const walk = async (path: string): Promise<void> => {
      await chown(path, uid, uid);
      if ((await stat(path)).isDirectory()) for (const entry of await readdir(path)) await walk(join(path, entry));
    };
    await walk(configDir);
    pgPort = await freePort();
    statusPort = await freePort();
    await podman(['volume', 'create', volume]);
  });

  after(async () => {
    if (image === '') return;
    await removeAll({ containers, volumes: [volume] });
    await removeTempDir(configDir);
  });

  it('bootstraps on an empty volume and turns healthy (podman healthcheck run)', async () => {
    const since = Date.now();
    await start(`${name}-1`, ['PGIM_RESTART_DELAY_MS=50']);
    const took = await healthy(`${name}-1`, since);
    console.log(`    podman run to healthy (bootstrap included): ${(took / 1000).toFixed(1)} s`);
    assert.equal((await podman(['inspect', '--format', '{{.State.Health.Status}}', `${name}-1`])).trim(), 'healthy');
  });

  it('accepts connections from the host on the port published on 127.0.0.1', async () => {
    const ports = await podman(['port', `${name}-1`, '5432/tcp']);
    assert.equal(ports.trim(), `127.0.0.1:${String(pgPort)}`, 'published on the loopback address only');
    const client = await connect(pgPort, 'app', secrets.appPassword);
    try {
      await client.query('CREATE TABLE kept (id int PRIMARY KEY, note text)');
      await client.query("INSERT INTO kept SELECT g, 'row ' || g FROM generate_series(1, 1000) g");
    } finally {
      await client.end();
    }
    firstStatus = await status();
    assert.equal(firstStatus.isPrimary, true);
    assert.equal(firstStatus.timeLineID, 1);
  });

  it('inside: pgim is PID 1 and postgres its child; nothing runs as root', async () => {
    const processes = await namespaceProcesses(await containerPid(`${name}-1`));
    const init = processes.find((p) => p.nspid === 1);
    assert.ok(init, 'a PID 1');
    assert.ok(init.cmdline.some((a) => /pgim(\.js)?$/.test(a)) && init.cmdline.includes('run'), `PID 1 is pgim run: ${init.cmdline.join(' ')}`);
    const postmaster = processes.find((p) => p.nsppid === 1 && p.name === 'postgres');
    assert.ok(postmaster, 'the postmaster is a child of PID 1');
    assert.equal(postmaster.nspid, (await status()).postmasterPid, 'the postmaster pgim reports');
    assert.ok(processes.filter((p) => p.nsppid === postmaster.nspid).length >= 3, 'postgres runs its own children (checkpointer, writer, ...)');
    for (const p of processes) {
      assert.deepEqual(p.uids, [uid, uid, uid, uid], `${p.name} (${String(p.nspid)}) runs as uid ${String(uid)}`);
      assert.deepEqual(p.gids, [uid, uid, uid, uid], `${p.name} (${String(p.nspid)}) runs as gid ${String(uid)}`);
    }
    const capabilities = await readFile(`/proc/${String(init.pid)}/status`, 'utf8');
    assert.match(capabilities, /^CapEff:\s+0+$/m, 'no effective capability');
    assert.match(capabilities, /^CapBnd:\s+0+$/m, 'an empty bounding set (--cap-drop ALL)');
    assert.match(capabilities, /^NoNewPrivs:\s+1$/m, 'no-new-privileges');
  });

  it('inside: the root filesystem is not writable, and no file is setuid or setgid', async () => {
    for (const path of ['/probe', '/usr/local/bin/probe', '/etc/pgim/probe', '/var/lib/postgresql/probe']) {
      const write = await run('podman', ['exec', `${name}-1`, 'sh', '-c', `: > ${path}`]);
      assert.notEqual(write.code, 0, `${path} must not be writable`);
      assert.match(write.stderr, /Read-only file system|Permission denied/, write.stderr);
    }
    const root = (await readFile(`/proc/${String(await containerPid(`${name}-1`))}/mountinfo`, 'utf8')).split('\n').find((l) => l.split(' ')[4] === '/');
    assert.ok(root !== undefined && /(^|,)ro(,|$)/.test(root.split(' ')[5] ?? ''), `/ is mounted read-only: ${root ?? '(none)'}`);
    // The container's whole file tree, seen from the host: no setuid or setgid file anywhere in the image.
    const merged = (await podman(['mount', `${name}-1`])).trim();
    try {
      const found = await run('find', [merged, '-xdev', '-type', 'f', '-perm', '/6000']);
      assert.equal(found.code, 0, found.stderr);
      assert.equal(found.stdout.trim(), '', 'setuid or setgid files');
    } finally {
      await podman(['unmount', `${name}-1`]);
    }
  });

  it('inside: zero zombies after ten backend crashes (each one restarts postgres, same timeline)', async () => {
    for (let crash = 1; crash <= 10; crash++) {
      const before = (await status()).restartCount ?? 0;
      const client = await connect(pgPort, 'app', secrets.appPassword);
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const backend = rows[0]?.pid;
      assert.ok(backend !== undefined);
      const kill = await run('podman', ['exec', `${name}-1`, 'sh', '-c', 'kill -KILL "$1"', 'sh', String(backend)]);
      assert.equal(kill.code, 0, kill.stderr);
      await client.end().catch(() => undefined);
      await eventually(async () => {
        const s = await status().catch(() => undefined);
        if (s?.restartCount !== before + 1) return undefined;
        return (await fetch(`http://127.0.0.1:${String(statusPort)}/readyz`)).status === 200 ? true : undefined;
      }, 120_000, `recovery after crash ${String(crash)}`);
    }
    const pid1 = await containerPid(`${name}-1`);
    await eventually(async () => {
      const zombies = (await namespaceProcesses(pid1)).filter((p) => p.state === 'Z');
      return zombies.length === 0 ? true : undefined;
    }, 10_000, 'no zombies in the container');
    const after = await status();
    assert.equal(after.timeLineID, 1, 'crash recovery keeps the timeline');
    assert.equal((await query<{ n: string }>(pgPort, 'app', secrets.appPassword, 'SELECT count(*) AS n FROM kept'))[0]?.n, '1000');
  });

  it('podman stop exits 0 and a second run on the same volume keeps the data and the timeline', async () => {
    const stop = await run('podman', ['stop', '--time', '60', `${name}-1`]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal((await podman(['inspect', '--format', '{{.State.ExitCode}}', `${name}-1`])).trim(), '0', 'pgim exited 0 after a clean stop');
    const logs = await podman(['logs', `${name}-1`]);
    assert.match(logs, /"msg":"pgim exiting".*"exitCode":0|"exitCode":0.*"msg":"pgim exiting"/);
    const since = Date.now();
    await start(`${name}-2`);
    const took = await healthy(`${name}-2`, since);
    console.log(`    podman run to healthy (existing volume): ${(took / 1000).toFixed(1)} s`);
    const second = await status();
    assert.equal(second.systemID, firstStatus.systemID, 'the same cluster');
    assert.equal(second.timeLineID, firstStatus.timeLineID, 'the same timeline');
    assert.equal((await query<{ n: string }>(pgPort, 'app', secrets.appPassword, 'SELECT count(*) AS n FROM kept'))[0]?.n, '1000');
  });

  it('SIGKILL of the container PID 1 leaves no postgres behind; the next run recovers the data', async () => {
    const pid1 = await containerPid(`${name}-2`);
    const namespace = await pidNamespace(pid1);
    assert.ok((await processesIn(namespace)).some((p) => p.name === 'postgres'), 'postgres runs before the kill');
    process.kill(pid1, 'SIGKILL');
    await eventually(async () => ((await processesIn(namespace)).length === 0 ? true : undefined), 30_000, 'every process of the container gone');
    await eventually(async () => ((await podman(['inspect', '--format', '{{.State.Status}}', `${name}-2`])).trim() === 'exited' ? true : undefined), 30_000, 'the container exited');
    await sleep(500);
    assert.deepEqual((await processesIn(namespace)).map((p) => `${p.name} ${String(p.pid)}`), [], 'nothing of the container runs on the host');
    await start(`${name}-3`);
    await healthy(`${name}-3`, Date.now());
    const third = await status();
    assert.equal(third.systemID, firstStatus.systemID);
    assert.equal(third.timeLineID, firstStatus.timeLineID, 'crash recovery, not a new timeline');
    assert.equal((await query<{ n: string }>(pgPort, 'app', secrets.appPassword, 'SELECT count(*) AS n FROM kept'))[0]?.n, '1000');
    assert.equal((await run('podman', ['stop', '--time', '60', `${name}-3`])).code, 0);
  });
});
