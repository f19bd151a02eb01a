import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { parseClusterManifest } from '../../src/cluster/parse.js';
import { repoRoot } from './paths.js';
import { handToPostgres } from '../../test-kit/env.js';

const run = promisify(execFile);
const pgimJs = join(repoRoot, 'dist', 'cmd', 'pgim.js');

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);

/** Compose's duration strings (`60s`, `1m30s`) in seconds. */
function seconds(value: unknown): number {
  let total = 0;
  for (const [, n, unit] of String(value).matchAll(/(\d+)(h|ms|m|s|us)/g)) {
    total += Number(n) * ({ h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6 }[unit ?? 's'] ?? 1);
  }
  return total;
}

/** A variable reference with its default, `${NAME:-default}` (Compose's `$${` is a literal `${`). */
const variable = /(?<!\$)\$\{(\w+)(:-)?([^}]*)\}/g;

/** Compose's interpolation with every variable unset: each reference becomes its default. */
function withDefaults(text: string): string {
  return text.replace(variable, (_all, _name: string, hasDefault: string | undefined, fallback: string) => (hasDefault === undefined ? '' : fallback));
}

describe('static: compose.yaml (Docker Compose; no engine needed)', function () {
  let compose: Obj = {};
  let raw: Obj = {};
  let services: Record<string, Obj> = {};
  let instances: [string, Obj][] = [];
  let clusterYaml = '';
  let text = '';

  before(async () => {
    text = await readFile(join(repoRoot, 'compose.yaml'), 'utf8');
    raw = parse(text, { merge: true }) as Obj;
    const parsed: unknown = parse(withDefaults(text), { merge: true });
    assert.ok(isObj(parsed) && isObj(parsed.services));
    compose = parsed;
    services = Object.fromEntries(Object.entries(parsed.services).filter((e): e is [string, Obj] => isObj(e[1])));
    instances = Object.entries(services).filter(([, s]) => strings(s.command).includes('--pod-name'));
    const certs = services.certs;
    assert.ok(certs && isObj(certs.environment), 'a "certs" service with the Cluster in its environment');
    clusterYaml = String(certs.environment.CLUSTER_YAML);
  });

  it('has a one-shot "certs" service and a primary and two replicas named demo-1, demo-2, demo-3', () => {
    assert.deepEqual(instances.map(([name]) => name), ['demo-1', 'demo-2', 'demo-3']);
    assert.equal(services.certs?.restart, 'no');
    assert.match(strings(services.certs.command).join('\n'), /exec pgim certs --cluster demo --instances 3 --out \/etc\/pgim\/secrets/);
  });

  it('every variable has a default (a plain `up` works), and only the image and the host ports are variables', () => {
    const references = [...text.matchAll(variable)];
    assert.ok(references.length > 0);
    for (const [all, name, hasDefault] of references) {
      assert.ok(hasDefault !== undefined, `${all} has no default`);
      assert.match(name ?? '', /^(PGIM_IMAGE|PGIM_DEMO_[1-3]_(PG|STATUS|METRICS)_PORT)$/, `${all}: an unexpected variable`);
    }
    const rawServices = isObj(raw.services) ? raw.services : {};
    for (const [name, s] of Object.entries(rawServices)) {
      // The loopback address itself is never a variable: nothing can publish a port on another interface.
      for (const port of isObj(s) ? strings(s.ports) : []) assert.match(port, /^127\.0\.0\.1:(\d+|\$\{PGIM_DEMO_\d_[A-Z]+_PORT:-\d+\}):\d+$/, `${name}: ${port}`);
    }
  });

  it('every service runs as 26:26, read-only root, no capabilities, no-new-privileges, never privileged', () => {
    for (const [name, s] of Object.entries(services)) {
      assert.equal(s.user, '26:26', `${name}: user`);
      assert.equal(s.read_only, true, `${name}: read_only`);
      assert.deepEqual(strings(s.cap_drop), ['ALL'], `${name}: cap_drop`);
      assert.equal(s.cap_add, undefined, `${name}: cap_add`);
      assert.ok(strings(s.security_opt).includes('no-new-privileges:true'), `${name}: no-new-privileges`);
      assert.notEqual(s.privileged, true, `${name}: privileged`);
      for (const key of ['pid', 'ipc', 'network_mode', 'devices', 'sysctls']) assert.equal(s[key], undefined, `${name}: ${key}`);
      assert.match(String(s.image), /^pgim:\d/, `${name}: the pgim image, by version`);
    }
  });

  it('each instance: pgim is PID 1 (the image ENTRYPOINT, `run --pod-name <service>`), no init, tmpfs for /controller and /tmp (nosuid, nodev, noexec, sticky 1777)', () => {
    for (const [name, s] of instances) {
      assert.equal(s.entrypoint, undefined, `${name}: keeps the image's ENTRYPOINT ["pgim", "run"]`);
      assert.notEqual(s.init, true, `${name}: no init wrapper`);
      assert.deepEqual(strings(s.command), ['--pod-name', name], `${name}: its pod name is its service name, which is also its address`);
      const tmpfs = strings(s.tmpfs).map((t) => t.split(':')[0]);
      assert.deepEqual(tmpfs.sort(), ['/controller', '/tmp'], `${name}: tmpfs`);
      for (const t of strings(s.tmpfs)) {
        const options = (t.split(':')[1] ?? '').split(',');
        for (const o of ['nosuid', 'nodev', 'noexec', 'mode=1777']) assert.ok(options.includes(o), `${name}: ${t} has ${o}`);
      }
    }
  });

  it('each instance: the config folder read-only at /etc/pgim, its own PGDATA volume at /var/lib/postgresql/data', () => {
    const volumes = isObj(compose.volumes) ? Object.keys(compose.volumes) : [];
    for (const [name, s] of instances) {
      const mounts = strings(s.volumes);
      assert.ok(mounts.includes('config:/etc/pgim:ro'), `${name}: config read-only`);
      assert.ok(mounts.includes(`${name}-data:/var/lib/postgresql/data`), `${name}: data volume`);
      assert.equal(mounts.length, 2, `${name}: nothing else is mounted`);
      assert.ok(volumes.includes(`${name}-data`) && volumes.includes('config'), `${name}: named volumes declared`);
    }
    assert.ok(strings(services.certs?.volumes).includes('config:/etc/pgim'), 'certs writes the config volume');
  });

  it('each instance: healthcheck in exec form on /readyz; ports published on 127.0.0.1 only; 5432, 8000, 9187', () => {
    for (const [name, s] of instances) {
      assert.ok(isObj(s.healthcheck), `${name}: healthcheck`);
      const test = strings(s.healthcheck.test);
      assert.equal(test[0], 'CMD', `${name}: exec form (CMD, not CMD-SHELL)`);
      assert.ok(test.some((a) => a.includes('http://127.0.0.1:8000/readyz')), `${name}: probes /readyz`);
      const ports = strings(s.ports);
      assert.deepEqual(ports.map((p) => p.split(':').at(-1)).sort(), ['5432', '8000', '9187'], `${name}: ports`);
      for (const p of ports) assert.match(p, /^127\.0\.0\.1:\d+:\d+$/, `${name}: ${p} is published on loopback only`);
    }
  });

  it("the Cluster in compose.yaml is valid for pgim: cluster demo, 3 instances, shutdown within Compose's grace period", () => {
    const cluster = parseClusterManifest(clusterYaml, 'compose.yaml x-cluster-yaml');
    assert.equal(cluster.name, 'demo');
    assert.equal(cluster.instances, instances.length);
    for (const [name, s] of instances) {
      assert.ok(Array.from({ length: cluster.instances }, (_, k) => `${cluster.name}-${String(k + 1)}`).includes(name), `${name} is an instance of ${cluster.name}`);
      assert.ok(cluster.stopDelaySeconds < seconds(s.stop_grace_period), `${name}: stopDelay ${String(cluster.stopDelaySeconds)} s < stop_grace_period ${String(s.stop_grace_period)}`);
      assert.notEqual(s.stop_signal, 'SIGKILL');
    }
  });

  describe('the "certs" service, run as a script (Docker replaced by a folder)', function () {
    let base = '';
    let config = '';

    const runCerts = async (): Promise<void> => {
      // Compose turns $$ into $; the config volume is a temp folder; `pgim` is this build.
      const script = strings(services.certs?.command)[0]?.replaceAll('$$', '$').replaceAll('/etc/pgim', config) ?? '';
      await run('/bin/sh', ['-euc', script], { env: { ...process.env, PATH: `${join(base, 'bin')}:${process.env.PATH ?? ''}`, CLUSTER_YAML: clusterYaml } });
    };

    before(async () => {
      base = await mkdtemp(join(tmpdir(), 'pgim-compose-'));
      config = join(base, 'config');
      await mkdir(join(base, 'bin'));
      await mkdir(config, { mode: 0o700 });
      await writeFile(join(base, 'bin', 'pgim'), `#!/bin/sh\nexec "${process.execPath}" "${pgimJs}" "$@"\n`);
      await chmod(join(base, 'bin', 'pgim'), 0o755);
      await runCerts();
    });

    after(async () => {
      await rm(base, { recursive: true, force: true });
    });

    it("writes the files-mode layout: cluster.yaml, secrets/<name>/<key> (CNPG's Secret names), configmaps/", async () => {
      assert.deepEqual((await readdir(config)).sort(), ['cluster.yaml', 'configmaps', 'secrets']);
      assert.equal(await readFile(join(config, 'cluster.yaml'), 'utf8'), clusterYaml);
      assert.deepEqual((await readdir(join(config, 'secrets'))).sort(), ['demo-app', 'demo-ca', 'demo-replication', 'demo-server', 'demo-superuser']);
      for (const secret of ['demo-app', 'demo-superuser']) {
        assert.deepEqual((await readdir(join(config, 'secrets', secret))).sort(), ['password', 'username']);
        assert.match(await readFile(join(config, 'secrets', secret, 'password'), 'utf8'), /^[\w-]{24}$/, 'a random password');
      }
    });

    it('keeps every file private (0600, folders 0700) and is idempotent: a second run changes nothing', async () => {
      const snapshot = async (): Promise<Map<string, string>> => {
        const out = new Map<string, string>();
        const walk = async (dir: string): Promise<void> => {
          for (const entry of await readdir(dir, { withFileTypes: true })) {
            const path = join(dir, entry.name);
            const mode = (await stat(path)).mode & 0o777;
            if (entry.isDirectory()) {
              assert.equal(mode, 0o700, `${path} is 0${mode.toString(8)}`);
              await walk(path);
            } else {
              assert.equal(mode, 0o600, `${path} is 0${mode.toString(8)}`);
              out.set(path, await readFile(path, 'utf8'));
            }
          }
        };
        await walk(config);
        return out;
      };
      const first = await snapshot();
      await runCerts();
      assert.deepEqual(await snapshot(), first);
    });

    it('pgim renders every instance from it: demo-1 the primary, demo-2 and demo-3 stream from demo-1:5432 with verify-full', async () => {
      // In Compose the certs service and the instances are both uid 26; as root here, pgim reads as the postgres user.
      await chmod(base, 0o755);
      await handToPostgres(config);
      for (const [name] of instances) {
        const out = join(base, `render-${name}`);
        await run(process.execPath, [pgimJs, 'render', '--config-dir', config, '--pod-name', name, '--pgdata', '/var/lib/postgresql/data/pgdata', '--runtime-dir', '/controller', '--out', out]);
        const override = await readFile(join(out, 'override.conf'), 'utf8');
        const custom = await readFile(join(out, 'custom.conf'), 'utf8');
        assert.match(custom, /^ssl = 'on'$/m, `${name}: TLS on`);
        if (name === 'demo-1') assert.doesNotMatch(override, /primary_conninfo/, 'demo-1 is the primary');
        else assert.match(override, /primary_conninfo = 'host=demo-1 [^']*port=5432 [^']*sslmode=verify-full/, `${name}: replica of demo-1`);
      }
    });
  });
});
