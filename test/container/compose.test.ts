/**
 * The shipped compose.yaml brought up for real with podman-compose and the image scripts/image.sh built: the certs
 * job, a primary and two replicas streaming over TLS (verify-full by service name), psql from the host on each port
 * published on 127.0.0.1, a switchover inside Compose, and down/up with the data kept. The project name is unique
 * to this run; everything it created (containers, pod, network, volumes) is removed at the end, even on failure.
 */
import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { eventually, freePort, makeTempDir, removeTempDir } from '../../test-kit/env.js';
import { podman, removeAll, requireImage, run, toolEnv, uniqueName } from './podman.js';
import { repoRoot } from '../static/paths.js';

const instances = ['demo-1', 'demo-2', 'demo-3'] as const;
type Instance = (typeof instances)[number];

/** podman-compose 1.6.0 as scripts/install-deps.sh installs it, else the one on PATH. */
function podmanCompose(): string {
  if (process.env.PGIM_PODMAN_COMPOSE) return process.env.PGIM_PODMAN_COMPOSE;
  const installed = join(homedir(), '.cache', 'pgim', 'podman-compose', '1.6.0', 'bin', 'podman-compose');
  return existsSync(installed) ? installed : 'podman-compose';
}

describe('container: compose.yaml brought up with podman-compose (certs job, primary, two replicas over TLS)', function () {
  this.timeout(1_200_000);
  const project = uniqueName('compose');
  const ports = new Map<Instance, { pg: number; status: number; metrics: number }>();
  let image = '';
  let env: NodeJS.ProcessEnv = {};
  let scratch = '';
  let caFile = '';
  let appPassword = '';

  const compose = async (args: string[]): Promise<string> => {
    const result = await run(podmanCompose(), ['--project-name', project, '--file', join(repoRoot, 'compose.yaml'), ...args], { env, cwd: repoRoot, timeoutMs: 600_000 });
    if (result.code !== 0) throw new Error(`podman-compose ${args.join(' ')}: exit ${String(result.code)}\n${(result.stdout + result.stderr).slice(-4000)}`);
    return result.stdout;
  };

  /** The container of a service in this project (podman-compose names it <project>_<service>_1). */
  const container = (service: string): string => `${project}_${service}_1`;

  /** psql from the host, on the instance's port published on 127.0.0.1, TLS verify-full against the cluster's CA. */
  const psql = async (instance: Instance, sql: string): Promise<string> => {
    const port = ports.get(instance)?.pg ?? 0;
    const conninfo = `host=127.0.0.1 port=${String(port)} user=app dbname=app sslmode=verify-full sslrootcert=${caFile} connect_timeout=5`;
    // The password goes through the environment, never the command line.
    const result = await run('psql', [conninfo, '--no-psqlrc', '--tuples-only', '--no-align', '--command', sql], { env: { ...process.env, PGPASSWORD: appPassword } });
    if (result.code !== 0) throw new Error(`psql on ${instance}: ${result.stderr.trim()}`);
    return result.stdout.trim();
  };

  /** psql inside an instance, as postgres over the Unix socket (peer authentication): the superuser's views. */
  const inside = async (instance: Instance, sql: string): Promise<string> =>
    (await podman(['exec', container(instance), '/usr/lib/postgresql/15/bin/psql', '--host', '/controller/run', '--username', 'postgres', '--dbname', 'postgres', '--no-psqlrc', '--tuples-only', '--no-align', '--command', sql])).trim();

  const allHealthy = async (): Promise<void> => {
    for (const instance of instances) {
      await eventually(async () => ((await run('podman', ['healthcheck', 'run', container(instance)])).code === 0 ? true : undefined), 600_000, `${instance} healthy`);
    }
  };

  /** Every replica streams from `primary` over TLS 1.3, and the primary sees them all. */
  const streamingFrom = async (primary: Instance): Promise<void> => {
    const replicas = instances.filter((i) => i !== primary);
    await eventually(async () => {
      const rows = (await inside(primary, "SELECT application_name, state, ssl, version FROM pg_stat_replication JOIN pg_stat_ssl USING (pid) ORDER BY 1")).split('\n');
      return rows.join(',') === replicas.map((r) => `${r}|streaming|t|TLSv1.3`).join(',') ? true : undefined;
    }, 120_000, `${replicas.join(' and ')} streaming from ${primary} over TLS 1.3`);
    for (const replica of replicas) {
      assert.equal(await inside(replica, 'SELECT status, sender_host, sender_port FROM pg_stat_wal_receiver'), `streaming|${primary}|5432`, `${replica} streams from ${primary} by its service name`);
      const conninfo = await inside(replica, 'SHOW primary_conninfo');
      assert.ok(conninfo.split(' ').includes(`host=${primary}`), conninfo);
      assert.match(conninfo, /sslmode=verify-full/, `${replica}: the primary's name is checked against its certificate`);
    }
  };

  before(async function () {
    image = requireImage(this);
    scratch = await makeTempDir('compose');
    const portEnv: Record<string, string> = {};
    for (const [n, instance] of instances.entries()) {
      const p = { pg: await freePort(), status: await freePort(), metrics: await freePort() };
      ports.set(instance, p);
      portEnv[`PGIM_DEMO_${String(n + 1)}_PG_PORT`] = String(p.pg);
      portEnv[`PGIM_DEMO_${String(n + 1)}_STATUS_PORT`] = String(p.status);
      portEnv[`PGIM_DEMO_${String(n + 1)}_METRICS_PORT`] = String(p.metrics);
    }
    env = toolEnv({ PGIM_IMAGE: image, ...portEnv });
  });

  after(async () => {
    if (image === '') return;
    // podman-compose's own cleanup first, then whatever it left, found by this project's label or name only.
    await run(podmanCompose(), ['--project-name', project, '--file', join(repoRoot, 'compose.yaml'), 'down', '--volumes', '--timeout', '10'], { env, cwd: repoRoot, timeoutMs: 300_000 }).catch(() => undefined);
    const label = `label=io.podman.compose.project=${project}`;
    const list = async (args: string[]): Promise<string[]> => (await run('podman', args)).stdout.split('\n').filter((l) => l.trim() !== '');
    await removeAll({
      containers: await list(['ps', '--all', '--filter', label, '--format', '{{.Names}}']),
      volumes: await list(['volume', 'ls', '--filter', label, '--format', '{{.Name}}']),
      networks: [`${project}_default`],
    });
    await run('podman', ['pod', 'rm', '--force', '--ignore', `pod_${project}`]);
    await removeTempDir(scratch);
  });

  it('podman-compose up -d: the certs job completes, then a primary and two replicas turn healthy', async () => {
    const since = Date.now();
    await compose(['up', '--detach']);
    assert.equal((await podman(['inspect', '--format', '{{.State.ExitCode}}', container('certs')])).trim(), '0', 'the certs job succeeded');
    await allHealthy();
    console.log(`    podman-compose up to three healthy instances: ${((Date.now() - since) / 1000).toFixed(1)} s`);
    appPassword = (await podman(['exec', container('demo-1'), 'cat', '/etc/pgim/secrets/demo-app/password'])).trim();
    caFile = join(scratch, 'ca.crt');
    await writeFile(caFile, await podman(['exec', container('demo-1'), 'cat', '/etc/pgim/secrets/demo-ca/ca.crt']));
  });

  it('the replicas stream from demo-1 over TLS 1.3, with verify-full against its service name', async () => {
    await streamingFrom('demo-1');
  });

  it('psql from the host reaches each instance on its port published on 127.0.0.1 only (TLS, verify-full)', async () => {
    for (const instance of instances) {
      const published = (await podman(['port', container(instance)])).trim().split('\n').map((l) => l.split(' -> ')[1]).sort();
      const p = ports.get(instance);
      assert.deepEqual(published, [p?.pg, p?.status, p?.metrics].map((n) => `127.0.0.1:${String(n)}`).sort(), `${instance}: loopback only`);
    }
    assert.equal(await psql('demo-1', 'SELECT pg_is_in_recovery()'), 'f');
    await psql('demo-1', "CREATE TABLE kept (id int PRIMARY KEY, note text); INSERT INTO kept SELECT g, 'before' FROM generate_series(1, 100) g");
    for (const replica of ['demo-2', 'demo-3'] as const) {
      assert.equal(await psql(replica, 'SELECT pg_is_in_recovery()'), 't');
      await eventually(async () => ((await psql(replica, 'SELECT count(*) FROM kept').catch(() => '')) === '100' ? true : undefined), 60_000, `rows on ${replica}`);
    }
  });

  it('a switchover inside Compose: demo-2 becomes the primary, demo-1 and demo-3 follow it', async () => {
    const out = await compose(['run', '--rm', '--entrypoint', 'pgim', 'certs', 'switchover', '--config-dir', '/etc/pgim', '--to', 'demo-2']);
    console.log(`    ${out.trim().split('\n').at(-1) ?? ''}`);
    await eventually(async () => ((await psql('demo-2', 'SELECT pg_is_in_recovery()').catch(() => '')) === 'f' ? true : undefined), 120_000, 'demo-2 promoted');
    await streamingFrom('demo-2');
    assert.equal(await inside('demo-2', 'SELECT timeline_id FROM pg_control_checkpoint()'), '2', 'the promotion started timeline 2');
    await psql('demo-2', "INSERT INTO kept SELECT g, 'after' FROM generate_series(101, 150) g");
    for (const replica of ['demo-1', 'demo-3'] as const) {
      await eventually(async () => ((await psql(replica, 'SELECT count(*) FROM kept').catch(() => '')) === '150' ? true : undefined), 60_000, `rows on ${replica}`);
    }
  });

  it('down, then up again: the data, the primary (demo-2) and its timeline are kept', async () => {
    await compose(['down']);
    const label = `label=io.podman.compose.project=${project}`;
    assert.equal((await podman(['ps', '--all', '--filter', label, '--format', '{{.Names}}'])).trim(), '', 'down removed the containers');
    const volumes = (await podman(['volume', 'ls', '--filter', label, '--format', '{{.Name}}'])).trim().split('\n').sort();
    assert.deepEqual(volumes, ['config', 'demo-1-data', 'demo-2-data', 'demo-3-data'].map((v) => `${project}_${v}`), 'the volumes stay');
    await compose(['up', '--detach']);
    await allHealthy();
    assert.equal((await podman(['exec', container('demo-1'), 'cat', '/etc/pgim/secrets/demo-app/password'])).trim(), appPassword, 'the certs job kept the Secrets');
    assert.equal(await psql('demo-2', 'SELECT pg_is_in_recovery()'), 'f', 'demo-2 is still the primary');
    await streamingFrom('demo-2');
    assert.equal(await inside('demo-2', 'SELECT timeline_id FROM pg_control_checkpoint()'), '2', 'the same timeline');
    for (const instance of instances) {
      await eventually(async () => ((await psql(instance, 'SELECT count(*) FROM kept').catch(() => '')) === '150' ? true : undefined), 60_000, `rows on ${instance}`);
    }
  });
});
