import { strict as assert } from 'node:assert';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { clusterManifest, writeConfigDir, type TestClusterOptions } from '../../test-kit/config.js';
import { eventually, freePort, handToPostgres, makeTempDir, removeTempDir, sleep } from '../../test-kit/env.js';
import { connect, killPostmaster, pgimEntry } from '../../test-kit/pgim.js';

/**
 * CloudNativePG conformance, proven with CloudNativePG's own code (v1.30.0, built from the Go module proxy by
 * scripts/build-cnpg-conformance.sh): CNPG's pkg/specs generates the command lines and environment of the pods and
 * Jobs, pgim runs exactly those, CNPG's PostgresqlStatus decodes every /pg/status document, CNPG's remote instance
 * client calls every endpoint the operator calls, and the Grafana dashboard's metrics are checked against /metrics.
 * With PGIM_CNPG_REPORT=<file> the run writes the report (docs/cnpg-compatibility.md is one).
 */

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const sharedData = join(repoRoot, '..', 'shared', 'data', 'cloudnative-pg');
const cluster = 'itest';
const namespace = 'default';
const secrets = { appPassword: 'app-Secret-1', superuserPassword: 'super-Secret-1' };
const clusterOptions: TestClusterOptions = {
  name: cluster,
  spec: { instances: 3, imageName: 'ghcr.io/cloudnative-pg/postgresql:15', primaryUpdateStrategy: 'supervised', storage: { size: '1Gi' } },
};

/** The conformance binary: from scripts/test.sh, or built here (cached). Under CI a missing binary fails. */
function conformanceBinary(): string | undefined {
  const fromEnv = process.env.PGIM_CNPG_CONFORMANCE_BIN;
  if (fromEnv !== undefined && existsSync(fromEnv)) return fromEnv;
  try {
    const out = execFileSync(join(repoRoot, 'scripts', 'build-cnpg-conformance.sh'), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const bin = out.trim().split('\n').pop();
    return bin !== undefined && existsSync(bin) ? bin : undefined;
  } catch {
    return undefined;
  }
}

async function goProgram<T>(bin: string, subcommand: string, request: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = execFile(bin, [subcommand], { maxBuffer: 64 * 1024 * 1024, timeout: 600_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`cnpg-conformance ${subcommand}: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as T);
    });
    child.stdin?.end(JSON.stringify(request));
  });
}

interface EnvVar {
  name: string;
  value?: string;
  from?: string;
}
interface Invocation {
  object: string;
  command: string[];
  env: EnvVar[];
  probeScheme?: string;
}
interface ClusterInvocations {
  cluster: string;
  invocations: Record<string, Invocation>;
}
interface DecodedDocument {
  kind: string;
  operatorError: string;
  strictError: string;
  unknownFields: string[];
}
interface Check {
  endpoint: string;
  pod: string;
  call: string;
  expectation: string;
  answer: string;
  ok: boolean;
}

interface Instance {
  name: string;
  pgdata: string;
  runtimeDir: string;
  pgPort: number;
  statusPort: number;
  metricsPort: number;
  process?: ChildProcess;
  lines: string[];
}

/** The pgim-only /pg/status fields the README documents (the Status API table's "plus pgim's ..." list). */
function documentedExtraFields(): Set<string> {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const row = readme.split('\n').find((line) => line.startsWith('| `/pg/status` |'));
  const extras = row?.split("plus pgim's")[1] ?? '';
  return new Set([...extras.matchAll(/`([A-Za-z]+)`/g)].map((m) => m[1] ?? ''));
}

/** Dashboard metrics pgim does not expose, each with its reason, as the README lists them. */
function documentedMissingMetrics(): Set<string> {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const section = readme.split('<!-- dashboard-missing -->')[1]?.split('<!-- /dashboard-missing -->')[0] ?? '';
  return new Set([...section.matchAll(/^- `(cnpg_[a-z0-9_]+)`: \S/gm)].map((m) => m[1] ?? ''));
}

/** Every metric name (or `__name__=~` pattern) the dashboard's panels and variables query. */
function dashboardMetrics(): string[] {
  const dashboard = JSON.parse(readFileSync(join(sharedData, 'grafana-dashboard.json'), 'utf8')) as Record<string, unknown>;
  const found = new Set<string>();
  const scan = (text: string): void => {
    const patterns = [...text.matchAll(/__name__=~\\?"([^"\\]+)\\?"/g)].map((m) => m[1] ?? '');
    for (const p of patterns) found.add(`~${p}`);
    const stripped = patterns.reduce((t, p) => t.replaceAll(p, ''), text);
    for (const m of stripped.matchAll(/\bcnpg_[a-zA-Z0-9_]+/g)) found.add(m[0]);
  };
  const walk = (node: unknown, key = ''): void => {
    if (typeof node === 'string') {
      if (['expr', 'query', 'definition'].includes(key)) scan(node);
    } else if (Array.isArray(node)) for (const n of node) walk(n, key);
    else if (node !== null && typeof node === 'object') for (const [k, v] of Object.entries(node)) walk(v, k);
  };
  walk(dashboard.panels);
  walk(dashboard.templating);
  return [...found].sort();
}

/** GET over TLS without verifying the server (as the kubelet probes). */
function insecureGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsGet({ host: '127.0.0.1', port, path, rejectUnauthorized: false, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

describe('CloudNativePG conformance: CNPG v1.30.0 Go code against pgim (pod and Job command lines, /pg/status, :8000, dashboard)', function () {
  this.timeout(15 * 60_000);
  let bin: string;
  let base = '';
  let configDir: string;
  let invocations: Record<string, Invocation>;
  const instances: Instance[] = [];
  const documents: { kind: string; body: string }[] = [];
  const report: string[] = [];
  const envOverrides: Record<string, string> = {};
  const checks: Check[] = [];
  let decoded: DecodedDocument[] = [];
  let dashboard: { metric: string; present: boolean; instances: string[] }[] = [];

  const manifest = (): Record<string, unknown> => clusterManifest(clusterOptions);
  const statusStanza = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    status: { operatorCertificateFingerprint: operatorFingerprint, ...extra },
  });
  let operatorFingerprint = '';

  async function writeCluster(options: TestClusterOptions, status: Record<string, unknown>): Promise<void> {
    const path = join(configDir, 'cluster.yaml');
    await writeFile(`${path}.tmp`, stringify({ ...clusterManifest(options), ...status }));
    await rename(`${path}.tmp`, path);
  }

  /** CNPG's environment for this instance, with the host paths and ports a test can use (recorded in the report). */
  function environment(instance: Instance, invocation: Invocation): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root' };
    for (const v of invocation.env) {
      if (v.from !== undefined) env[v.name] = v.from.endsWith('/username') ? 'app' : '';
      else env[v.name] = v.value ?? '';
    }
    const overrides = {
      PGDATA: instance.pgdata,
      PGPORT: String(instance.pgPort),
      PGHOST: join(instance.runtimeDir, 'run'),
      TMPDIR: join(instance.runtimeDir, 'tmp'),
      PSQL_HISTORY: join(instance.runtimeDir, 'tmp', '.psql_history'),
    };
    for (const [name, value] of Object.entries(overrides)) {
      envOverrides[name] = `${String(invocation.env.find((v) => v.name === name)?.value)} -> ${name === 'PGPORT' ? 'a free port' : 'a temp folder'}`;
      env[name] = value;
    }
    // What a pgim image adds to the pod (files mode here; in a pod the ServiceAccount selects Kubernetes mode).
    Object.assign(env, {
      PGIM_CONFIG_DIR: configDir,
      PGIM_RUNTIME_DIR: instance.runtimeDir,
      PGIM_STATUS_PORT: String(instance.statusPort),
      PGIM_METRICS_PORT: String(instance.metricsPort),
      PGIM_LISTEN_ADDRESS: '127.0.0.1',
    });
    return env;
  }

  /** Runs pgim with CNPG's argv: `/controller/manager` becomes pgim, everything after it is CNPG's. */
  function launch(instance: Instance, invocation: Invocation): ChildProcess {
    const [program, ...args] = invocation.command;
    assert.equal(program, '/controller/manager');
    const child = spawn(process.execPath, [pgimEntry, ...args], { env: environment(instance, invocation), stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [child.stdout, child.stderr]) createInterface({ input: stream }).on('line', (line) => instance.lines.push(line));
    return child;
  }

  async function runToExit(instance: Instance, invocation: Invocation): Promise<number | null> {
    const child = launch(instance, invocation);
    return new Promise((resolve) => {
      child.once('exit', (code) => {
        resolve(code);
      });
    });
  }

  async function startRun(instance: Instance): Promise<void> {
    const n = instances.indexOf(instance) + 1;
    const invocation = invocations[`run-${n}`];
    assert.ok(invocation);
    instance.process = launch(instance, invocation);
    await eventually(async () => ((await insecureGet(instance.statusPort, '/readyz')).status === 200 ? true : undefined), 180_000, `${instance.name} /readyz`);
  }

  async function pgStatus(instance: Instance): Promise<{ status: number; body: string }> {
    return insecureGet(instance.statusPort, '/pg/status');
  }

  async function capture(kind: string, instance: Instance, accept: (doc: Record<string, unknown>) => boolean, timeoutMs = 60_000): Promise<boolean> {
    try {
      await eventually(
        async () => {
          const res = await pgStatus(instance);
          if (res.status !== 200) return undefined;
          if (!accept(JSON.parse(res.body) as Record<string, unknown>)) return undefined;
          documents.push({ kind, body: res.body });
          return true;
        },
        timeoutMs,
        kind,
      );
      return true;
    } catch {
      return false;
    }
  }

  before(async function () {
    const found = conformanceBinary();
    if (found === undefined) {
      if (process.env.CI === 'true') throw new Error('the CNPG conformance program could not be built (scripts/build-cnpg-conformance.sh): Go and the module proxy are required under CI');
      console.warn('\n  SKIPPED: CNPG conformance: the Go program could not be built (no Go or no module proxy); see scripts/build-cnpg-conformance.sh\n');
      this.skip();
    }
    bin = found;
    base = await makeTempDir('cnpg');
    configDir = join(base, 'config');
    await writeConfigDir(configDir, clusterOptions, secrets);
    execFileSync(process.execPath, [pgimEntry, 'certs', '--cluster', cluster, '--instances', '3', '--out', join(configDir, 'secrets')], { stdio: 'ignore' });
    const certs = join(base, 'operator');
    await mkdir(certs);
    for (const name of ['operator', 'stranger']) {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(certs, `${name}.key`),
        '-out', join(certs, `${name}.crt`), '-subj', '/CN=cnpg-operator', '-days', '2'], { stdio: 'ignore' });
    }
    operatorFingerprint = execFileSync('sh', ['-c', `openssl x509 -in '${join(certs, 'operator.crt')}' -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum`], {
      encoding: 'utf8',
    }).split(' ')[0] ?? '';
    await writeCluster(clusterOptions, statusStanza());
    await mkdir(join(configDir, 'configmaps', `${cluster}-hosts`), { recursive: true });
    for (let n = 1; n <= 3; n++) {
      const instance: Instance = {
        name: `${cluster}-${n}`,
        pgdata: join(base, `pgdata-${n}`),
        runtimeDir: join(base, `runtime-${n}`),
        pgPort: await freePort(),
        statusPort: await freePort(),
        metricsPort: await freePort(),
        lines: [],
      };
      instances.push(instance);
      await writeFile(join(configDir, 'configmaps', `${cluster}-hosts`, instance.name), `127.0.0.1:${instance.pgPort}`);
    }
    await handToPostgres(configDir);
    const specs = await goProgram<ClusterInvocations[]>(bin, 'specs', { clusters: [{ ...manifest(), metadata: { name: cluster, namespace } }] });
    invocations = specs[0]?.invocations ?? {};
  });

  after(async () => {
    for (const instance of instances) {
      instance.process?.kill('SIGTERM');
    }
    for (const instance of instances) {
      if (instance.process && instance.process.exitCode === null) {
        await Promise.race([new Promise((resolve) => instance.process?.once('exit', resolve)), sleep(60_000)]);
      }
      await killPostmaster(instance.pgdata);
    }
    if (base !== '') await removeTempDir(base);
    if (decoded.length > 0 || checks.length > 0) report.push(...renderReport(invocations, envOverrides, documents, decoded, checks, dashboard, documentedExtraFields()));
    if (report.length > 0 && process.env.PGIM_CNPG_REPORT !== undefined) await writeFile(process.env.PGIM_CNPG_REPORT, `${report.join('\n')}\n`);
  });

  it('CNPG pkg/specs: the pod template runs `instance run --status-port-tls`, the Jobs `instance init` and `instance join`', () => {
    const run = invocations['run-1'];
    assert.ok(run, 'a pod for itest-1');
    assert.deepEqual(run.command.slice(0, 3), ['/controller/manager', 'instance', 'run']);
    assert.ok(run.command.includes('--status-port-tls'), 'CNPG serves :8000 over TLS');
    assert.equal(run.probeScheme, 'HTTPS');
    assert.deepEqual(invocations['init-1']?.command.slice(0, 3), ['/controller/manager', 'instance', 'init']);
    assert.deepEqual(invocations['join-2']?.command.slice(0, 5), ['/controller/manager', 'instance', 'join', '--parent-node', `${cluster}-rw`]);
    for (const name of ['PGDATA', 'POD_NAME', 'NAMESPACE', 'CLUSTER_NAME', 'PGPORT', 'PGHOST']) {
      assert.ok(run.env.some((v) => v.name === name), `pod env has ${name}`);
    }
  });

  it("runs pgim with CNPG's exact command lines: init Job, primary pod, join Jobs, replica pods; captures /pg/status of each kind", async () => {
    const [primary, ...replicas] = instances as [Instance, Instance, Instance];
    const init = invocations['init-1'];
    assert.ok(init);
    assert.equal(await runToExit(primary, init), 0, `instance init exits 0:\n${primary.lines.slice(-15).join('\n')}`);
    await startRun(primary);
    assert.ok(await capture('single primary', primary, (d) => d.isPrimary === true), 'single primary document');
    // Enough data that the replicas' base backups can be seen in progress on the primary.
    const client = await connect(primary.pgPort, 'app', secrets.appPassword);
    await client.query('CREATE TABLE filler AS SELECT g, repeat(md5(g::text), 4) AS pad FROM generate_series(1, 300000) g');
    await client.end();
    const seen = capture('primary during a base backup', primary, (d) => Array.isArray(d.pgStatBasebackupsInfo) && d.pgStatBasebackupsInfo.length > 0, 120_000);
    for (const [i, replica] of replicas.entries()) {
      const join = invocations[`join-${i + 2}`];
      assert.ok(join);
      assert.equal(await runToExit(replica, join), 0, `instance join exits 0:\n${replica.lines.slice(-15).join('\n')}`);
    }
    report.push(`base backup in progress seen on the primary: ${String(await seen)}`);
    for (const replica of replicas) await startRun(replica);
    assert.ok(
      await capture('primary with two streaming replicas', primary, (d) => Array.isArray(d.replicationInfo) && d.replicationInfo.filter((r: { state?: string }) => r.state === 'streaming').length === 2, 120_000),
      'primary with two streaming replicas',
    );
    assert.ok(await capture('replica', replicas[0], (d) => d.isPrimary === false && d.isWalReceiverActive === true));
  });

  it("`instance status` prints the document kubectl-cnpg parses; what pgim cannot do exits 3 naming it, and writes nothing; wal-restore answers 'not there'", async () => {
    const [primary] = instances as [Instance];
    const run = invocations['run-1'];
    assert.ok(run);
    const env = environment(primary, run);
    const status = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      execFile(process.execPath, [pgimEntry, 'instance', 'status'], { env }, (err, stdout) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout });
      });
    });
    assert.equal(status.code, 0);
    assert.equal((JSON.parse(status.stdout) as { isPrimary?: boolean }).isPrimary, true);
    documents.push({ kind: '`instance status` output (what kubectl cnpg status parses)', body: status.stdout });

    const attempt = (argv: string[], extra: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stderr: string }> =>
      new Promise((resolve) => {
        execFile(process.execPath, [pgimEntry, ...argv], { env: { ...env, ...extra } }, (err, stdout, stderr) => {
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr: `${stderr}${stdout}` });
        });
      });
    const fresh = join(base, 'pgdata-refused');
    for (const [argv, message] of [
      [['instance', 'restore'], /spec\.bootstrap\.recovery: is required by pgim restore/],
      [['instance', 'init', '--initdb-flags', '', '--app-db-name', 'other', '--app-user', 'app'], /--app-db-name other, the Cluster says app/],
    ] as const) {
      const result = await attempt([...argv], { PGDATA: fresh, POD_NAME: `${cluster}-9-initdb` });
      assert.equal(result.code, 3, `${argv.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
    }
    assert.equal(existsSync(fresh), false, 'a refused invocation writes nothing');
    // CNPG's restore_command line: without an object store every file is "not there" (exit 1, never fatal to PostgreSQL).
    const walRestore = await attempt(['wal-restore', '--log-destination', '/controller/log/postgres.json', '000000010000000000000001', join(base, 'RECOVERYXLOG')]);
    assert.equal(walRestore.code, 1, walRestore.stderr);
    assert.equal(existsSync(join(base, 'RECOVERYXLOG')), false);
  });

  it("CNPG's remote instance client: every endpoint the operator calls on :8000, over TLS with the operator certificate", async () => {
    const command = invocations['run-1']?.command ?? [];
    const result = await goProgram<{ scheme: string; checks: Check[] }>(bin, 'endpoints', {
      cluster,
      namespace,
      caFile: join(configDir, 'secrets', `${cluster}-ca`, 'ca.crt'),
      operatorCert: { cert: join(base, 'operator', 'operator.crt'), key: join(base, 'operator', 'operator.key') },
      strangerCert: { cert: join(base, 'operator', 'stranger.crt'), key: join(base, 'operator', 'stranger.key') },
      command,
      pods: instances.map((i) => ({ name: i.name, target: `127.0.0.1:${i.statusPort}` })),
      backupPod: `${cluster}-2`,
      backupName: 'snapshot-backup-1',
      workDir: base,
    });
    assert.equal(result.scheme, 'https');
    checks.push(...result.checks);
    const failed = result.checks.filter((c) => !c.ok);
    assert.deepEqual(failed, [], 'every check passes');
  });

  it('the Grafana dashboard: every cnpg_* metric its panels query is exposed by pgim (primary with replicas) or the README says why not', async () => {
    // Query families appear after the first scheduled collection that sees them (every 30 s): a replica that joined
    // after the primary's last collection shows up in pg_stat_replication at the next one.
    const scrape = async (): Promise<Map<string, string[]>> => {
      const exposed = new Map<string, string[]>();
      for (const instance of instances) {
        const text = await (await fetch(`http://127.0.0.1:${instance.metricsPort}/metrics`)).text();
        // Samples only: a family announced by `# TYPE` without a sample draws nothing on a dashboard.
        for (const m of text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{|\s)/gm)) {
          const name = m[1] ?? '';
          if (!(exposed.get(name) ?? []).includes(instance.name)) exposed.set(name, [...(exposed.get(name) ?? []), instance.name]);
        }
      }
      return exposed;
    };
    const missingDocumented = documentedMissingMetrics();
    const evaluate = (exposed: Map<string, string[]>): { metric: string; present: boolean; instances: string[] }[] =>
      dashboardMetrics().map((metric) => {
        const matches = metric.startsWith('~')
          ? // The dashboard's own `__name__=~` pattern, applied as Prometheus would (anchored).
            // eslint-disable-next-line security/detect-non-literal-regexp
            [...exposed.keys()].filter((name) => new RegExp(`^(?:${metric.slice(1)})$`).test(name))
          : exposed.has(metric)
            ? [metric]
            : [];
        return { metric, present: matches.length > 0, instances: [...new Set(matches.flatMap((m) => exposed.get(m) ?? []))] };
      });
    const complete = (result: typeof dashboard): boolean => result.every((d) => d.present || missingDocumented.has(d.metric));
    dashboard = await eventually(async () => {
      const result = evaluate(await scrape());
      dashboard = result;
      return complete(result) ? result : undefined;
    }, 75_000, 'the dashboard metrics').catch(() => dashboard);
    const undocumented = dashboard.filter((d) => !d.present && !missingDocumented.has(d.metric));
    assert.deepEqual(undocumented.map((d) => d.metric), [], 'dashboard metrics neither exposed nor documented as missing');
  });
  it('/pg/status during a restart for pending settings, while fenced, and during pg_rewind', async () => {
    const [primary, replica, third] = instances as [Instance, Instance, Instance];
    // Supervised: a lowered max_connections waits for the user; CNPG reports pendingRestartForDecrease.
    const lowered: TestClusterOptions = { ...clusterOptions, parameters: { max_connections: '25' } };
    await writeCluster(lowered, statusStanza());
    assert.ok(await capture('primary with a pending restart (decrease)', primary, (d) => d.pendingRestart === true && d.pendingRestartForDecrease === true));
    await capture('replica with a pending restart (decrease)', replica, (d) => d.pendingRestartForDecrease === true, 30_000);
    await writeCluster(clusterOptions, statusStanza());
    await eventually(async () => ((JSON.parse((await pgStatus(primary)).body) as { pendingRestart?: boolean }).pendingRestart === false ? true : undefined), 60_000, 'no pending restart');
    // Fencing: CNPG's annotation stops postgres on the instance; its status still answers (masked error).
    await writeCluster({ ...clusterOptions, annotations: { 'cnpg.io/fencedInstances': JSON.stringify([third.name]) } }, statusStanza());
    assert.ok(await capture('fenced replica', third, (d) => d.mightBeUnavailable === true && typeof d.mightBeUnavailableMaskedError === 'string'));
    const metrics = await (await fetch(`http://127.0.0.1:${third.metricsPort}/metrics`)).text();
    assert.match(metrics, /^cnpg_collector_fencing_on 1$/m, 'fencing_on reads 1 while fenced');
    await writeCluster(clusterOptions, statusStanza());
    await eventually(async () => ((await insecureGet(third.statusPort, '/readyz')).status === 200 ? true : undefined), 120_000, 'unfenced');
    // A switchover: the old primary rewinds; CNPG reports only isPgRewindRunning meanwhile.
    await writeCluster(clusterOptions, statusStanza({ targetPrimary: replica.name }));
    const rewind = await capture('former primary during pg_rewind', primary, (d) => d.isPgRewindRunning === true, 60_000);
    report.push(`pg_rewind in progress seen on the former primary: ${String(rewind)}`);
    await eventually(async () => ((JSON.parse((await pgStatus(primary)).body) as { isPrimary?: boolean; isWalReceiverActive?: boolean }).isWalReceiverActive === true ? true : undefined), 120_000, 'former primary streaming');
    assert.ok(await capture('new primary after a switchover', replica, (d) => d.isPrimary === true && Array.isArray(d.replicationInfo) && d.replicationInfo.length === 2, 120_000));
  });

  it("CNPG's PostgresqlStatus decodes every document (json.Unmarshal, as the operator); unknown fields only where the README documents them", async () => {
    decoded = await goProgram<DecodedDocument[]>(bin, 'decode', { documents });
    const allowed = documentedExtraFields();
    assert.ok(allowed.size > 0, 'the README documents the pgim-only fields');
    for (const doc of decoded) {
      assert.equal(doc.operatorError, '', `${doc.kind}: the operator's json.Unmarshal fails: ${doc.operatorError}`);
      const undocumented = doc.unknownFields.filter((f) => !allowed.has(f.replace(/^\./, '')));
      assert.deepEqual(undocumented, [], `${doc.kind}: fields CNPG does not know and the README does not document`);
    }
    const replication = documents.find((d) => d.kind === 'primary with two streaming replicas');
    assert.ok(replication);
    const info = (JSON.parse(replication.body) as { replicationInfo: { syncPriority: unknown; writeLag: unknown }[] }).replicationInfo;
    for (const r of info) {
      assert.equal(typeof r.syncPriority, 'string', 'syncPriority is a string, as CNPG');
      assert.match(String(r.writeLag), /^\d\d:\d\d:\d\d[.\d]*$/, 'writeLag is an interval like 00:00:00.001');
    }
  });

});

function renderReport(
  invocations: Record<string, Invocation>,
  envOverrides: Record<string, string>,
  documents: { kind: string; body: string }[],
  decoded: DecodedDocument[],
  checks: Check[],
  dashboard: { metric: string; present: boolean; instances: string[] }[],
  allowed: Set<string>,
): string[] {
  const out: string[] = [];
  const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  out.push('', '## Command lines (CNPG pkg/specs → pgim)', '', '| object | CNPG command line | pgim |', '|---|---|---|');
  for (const [key, inv] of Object.entries(invocations).sort()) {
    out.push(`| ${inv.object} | \`${cell(inv.command.join(' '))}\` | ran as \`pgim ${cell(inv.command.slice(1).join(' '))}\` (${key.startsWith('run') ? 'served until stopped' : 'exit 0'}) |`);
  }
  out.push('', 'Environment: CNPG\'s variables as generated; host paths and ports replaced for the test:', '');
  for (const [name, what] of Object.entries(envOverrides)) out.push(`- \`${name}\`: ${what}`);
  out.push('', '## /pg/status documents (CNPG `postgres.PostgresqlStatus`)', '', '| document | operator json.Unmarshal | unknown fields (all documented pgim-only) |', '|---|---|---|');
  for (const doc of decoded) {
    const unknown = doc.unknownFields.map((f) => f.replace(/^\./, '')).filter((f) => allowed.has(f));
    out.push(`| ${doc.kind} | ${doc.operatorError === '' ? 'decodes' : cell(doc.operatorError)} | ${unknown.length === 0 ? 'none' : unknown.map((f) => `\`${f}\``).join(', ')} |`);
  }
  out.push('', `Documents captured: ${documents.length}.`);
  const sample = documents.find((d) => d.kind === 'primary with two streaming replicas');
  if (sample) {
    const doc = JSON.parse(sample.body) as Record<string, unknown>;
    out.push('', '### Fields of the primary with two streaming replicas', '', '| field | in CNPG\'s PostgresqlStatus | pgim\'s answer |', '|---|---|---|');
    for (const [field, value] of Object.entries(doc)) {
      const shown = Array.isArray(value) ? `${value.length} item(s): ${JSON.stringify(value[0] ?? null)}` : JSON.stringify(value);
      out.push(`| \`${field}\` | ${allowed.has(field) ? 'no (pgim-only, documented)' : 'yes'} | \`${cell(shown).slice(0, 160)}\` |`);
    }
  }
  out.push('', '## Endpoints (CNPG `webserver/client/remote`, over TLS 1.3)', '', '| endpoint | pod | call | CNPG expects | pgim answered | ok |', '|---|---|---|---|---|---|');
  for (const c of checks) out.push(`| ${c.endpoint} | ${c.pod} | ${cell(c.call)} | ${cell(c.expectation)} | ${cell(c.answer).slice(0, 300)} | ${c.ok ? 'yes' : 'NO'} |`);
  const present = dashboard.filter((d) => d.present).length;
  out.push('', `## Grafana dashboard metrics: ${present} of ${dashboard.length} exposed`, '', '| metric (or `__name__=~` pattern) | exposed by |', '|---|---|');
  for (const d of dashboard) out.push(`| \`${cell(d.metric)}\` | ${d.present ? d.instances.join(', ') : 'not exposed (see the README)'} |`);
  return out;
}
