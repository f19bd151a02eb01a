#!/usr/bin/env -S UV_THREADPOOL_SIZE=2 node --v8-pool-size=2
// The shebang sizes Node's thread pools before Node starts (they cannot change later): two libuv workers for pgim's
// few file and DNS calls, two V8 workers for concurrent GC and compilation; 7 threads in all instead of 11.
// First, before anything else loads: signals pgim does not use (SIGUSR1 would open Node's inspector) are ignored.
import '../src/process/signals.js';
// Then V8's young generation is held at its initial size, before start-up allocates (src/process/heap.ts).
import '../src/process/heap.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ExitCode } from '../src/errors/index.js';
import { ambientKubeconfig, inClusterAvailable } from '../src/controlplane/kubernetes/environment.js';
import { translateCnpgInvocation } from '../src/options/cnpg-invocation.js';
import type { InstanceOptions, KubernetesOptions } from '../src/options/index.js';
import { findPgBinDir, tryFindPgBinDir } from '../src/postgres/binaries.js';
import { CannotStartError } from '../src/postgres/cannot-start.js';

const instanceFlags = {
  'config-dir': { type: 'string', env: 'PGIM_CONFIG_DIR', help: 'config folder: cluster.yaml, secrets/, configmaps/ (files mode)' },
  kubeconfig: { type: 'string', env: 'PGIM_KUBECONFIG', help: 'Kubernetes mode with this kubeconfig (also $KUBECONFIG; in a pod: the ServiceAccount)' },
  namespace: { type: 'string', env: 'NAMESPACE', help: 'Kubernetes mode: the Cluster\'s namespace (default: the kubeconfig\'s or the pod\'s)' },
  'cluster-name': { type: 'string', env: 'CLUSTER_NAME', help: 'Kubernetes mode: the Cluster this instance belongs to' },
  pgdata: { type: 'string', env: 'PGDATA', help: 'PostgreSQL data directory' },
  'pod-name': { type: 'string', env: 'POD_NAME', help: 'this instance\'s name (default <cluster>-1)' },
  'runtime-dir': { type: 'string', env: 'PGIM_RUNTIME_DIR', help: 'sockets, logs, certificates (default /controller)' },
  'pg-port': { type: 'string', env: 'PGPORT', help: 'PostgreSQL port (default 5432)' },
  'status-port': { type: 'string', env: 'PGIM_STATUS_PORT', help: 'status API port (default 8000)' },
  'metrics-port': { type: 'string', env: 'PGIM_METRICS_PORT', help: 'Prometheus metrics port (default 9187)' },
  'listen-address': { type: 'string', env: 'PGIM_LISTEN_ADDRESS', help: 'address(es) to listen on (default *)' },
  user: { type: 'string', env: 'PGIM_USER', help: 'OS user postgres runs as when pgim starts as root (default postgres)' },
  'on-postgres-exit': { type: 'string', env: 'PGIM_ON_POSTGRES_EXIT', help: 'restart|exit after a postmaster crash (default restart)' },
  'status-tls': { type: 'boolean', env: 'PGIM_STATUS_TLS', help: 'serve the status API over TLS 1.3 with the <cluster>-server certificate' },
  'metrics-tls': { type: 'boolean', env: 'PGIM_METRICS_TLS', help: 'serve /metrics over TLS 1.3 (also spec.monitoring.tls.enabled)' },
  'tablespaces-dir': { type: 'string', env: 'PGIM_TABLESPACES_DIR', help: 'tablespace folders <dir>/<name>/data (default: <pgdata>-tablespaces; Kubernetes: /var/lib/postgresql/tablespaces)' },
} as const;

interface FlagSpec {
  type: 'string' | 'boolean';
  env?: string;
  help: string;
}

const commands: Record<string, { summary: string; flags: Record<string, FlagSpec> }> = {
  run: { summary: 'bootstrap if needed, then run and supervise PostgreSQL', flags: instanceFlags },
  init: { summary: 'initdb and bootstrap an empty PGDATA (or clone an external cluster), then exit', flags: instanceFlags },
  join: { summary: 'clone the primary into an empty PGDATA (pg_basebackup over TLS), then exit', flags: instanceFlags },
  restore: { summary: 'restore spec.bootstrap.recovery (a backup and its WAL) into an empty PGDATA, then exit', flags: instanceFlags },
  switchover: {
    summary: 'files mode: make another instance the primary (writes status.targetPrimary)',
    flags: {
      'config-dir': { type: 'string', env: 'PGIM_CONFIG_DIR', help: 'the shared config folder' },
      to: { type: 'string', help: 'the instance to promote (default: the most advanced healthy replica)' },
      failover: { type: 'boolean', help: 'the primary is gone: accept a replica that no longer streams (synchronous: only one sure to hold every acknowledged commit)' },
    },
  },
  certs: {
    summary: "create the cluster's CA, server and streaming_replica certificates as files-mode Secrets",
    flags: {
      cluster: { type: 'string', help: 'the Cluster name' },
      instances: { type: 'string', help: 'how many instances the server certificate names (default 3)' },
      out: { type: 'string', help: 'the config folder\'s secrets/ folder' },
      hosts: { type: 'string', help: 'extra host names or IPs for the server certificate, comma-separated' },
    },
  },
  render: {
    summary: 'write every rendered file into --out, start nothing',
    flags: { ...instanceFlags, out: { type: 'string', help: 'folder to write the rendered files to' } },
  },
  'wal-archive': {
    summary: "PostgreSQL's archive_command: archive one WAL segment to the object store (CNPG's wal-archive)",
    flags: {
      pgdata: { type: 'string', help: 'PostgreSQL data directory (default: the working directory, where PostgreSQL runs it)' },
      'runtime-dir': { type: 'string', env: 'PGIM_RUNTIME_DIR', help: 'pgim\'s runtime dir (default /controller)' },
      'pg-data': { type: 'string', help: "CloudNativePG's name for --pgdata" },
      'log-destination': { type: 'string', help: 'accepted for CloudNativePG compatibility; logs go to stderr' },
      'pod-name': { type: 'string', env: 'POD_NAME', help: 'accepted for CloudNativePG compatibility' },
    },
  },
  'wal-restore': {
    summary: "PostgreSQL's restore_command: fetch one WAL file from the object store (CNPG's wal-restore)",
    flags: {
      'runtime-dir': { type: 'string', env: 'PGIM_RUNTIME_DIR', help: 'pgim\'s runtime dir (default /controller)' },
      'pg-data': { type: 'string', help: 'accepted for CloudNativePG compatibility (PostgreSQL runs the command in PGDATA)' },
      'log-destination': { type: 'string', help: 'accepted for CloudNativePG compatibility; logs go to stderr' },
      'pod-name': { type: 'string', env: 'POD_NAME', help: 'accepted for CloudNativePG compatibility' },
    },
  },
  backup: {
    summary: 'take a base backup to the object store now (asks the running instance); `backup <name>`: take that Backup object (CNPG\'s form, run by its operator)',
    flags: {
      name: { type: 'string', help: 'the backup name (default backup-<YYYYMMDDhhmmss>)' },
      url: { type: 'string', help: 'the instance\'s status URL (default http://127.0.0.1:$PGIM_STATUS_PORT)' },
    },
  },
  status: {
    summary: 'show the status of a running instance',
    flags: {
      url: { type: 'string', help: "the instance's base URL or its /pg/status URL (default http://127.0.0.1:$PGIM_STATUS_PORT)" },
      json: { type: 'boolean', help: 'print the raw JSON document' },
      cacert: { type: 'string', help: 'PEM CA that signed the status certificate (https:// URLs)' },
      insecure: { type: 'boolean', help: 'accept any status certificate (https:// URLs)' },
    },
  },
};

class UsageError extends Error {}

/** `true` in the bundle (scripts/bundle.ts defines it); absent in tsc's per-file output. */
declare const PGIM_COMMAND_BUNDLES: true | undefined;

/**
 * A short-lived command's modules from its own bundle, dist/cmd/commands/<name>.cjs, compiled from V8's code cache
 * (src/process/code-cache.ts). Each call site reads
 * `typeof PGIM_COMMAND_BUNDLES !== 'undefined' ? await commandBundle(...) : await import(...)`: in the bundle the
 * condition is a constant, so esbuild leaves the tsc module out; run from tsc's output, the module is imported.
 */
async function commandBundle<T>(name: 'switchover' | 'wal-archive' | 'wal-restore' | 'status' | 'backup' | 'backup-request'): Promise<T> {
  const { loadBundle } = await import('../src/process/code-cache.js');
  return loadBundle<T>(fileURLToPath(new URL(`commands/${name}.cjs`, import.meta.url))).exports;
}

function usage(command?: string): string {
  if (command === undefined || !(command in commands)) {
    const list = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`);
    return [
      'Usage: pgim <command> [flags]',
      '',
      'Commands:',
      ...list,
      '',
      'Run `pgim <command> --help` for its flags.',
      "CloudNativePG's command lines work too: pgim instance run|init|join|status [CNPG's flags] (see the README).",
    ].join('\n');
  }
  const spec = commands[command];
  const lines = Object.entries(spec?.flags ?? {}).map(([name, flag]) => {
    const env = flag.env === undefined ? '' : ` [$${flag.env}]`;
    return `  --${name.padEnd(18)} ${flag.help}${env}`;
  });
  return [`Usage: pgim ${command} [flags]`, '', spec?.summary ?? '', '', 'Flags:', ...lines, '  --help               show this help'].join('\n');
}

type Values = Record<string, string | boolean | undefined>;

/** Commands that take positional arguments, and how many. */
const positionalCounts: Readonly<Record<string, number | readonly number[]>> = { 'wal-archive': 1, 'wal-restore': 2, backup: [0, 1] };

function parse(command: string, argv: string[]): Values {
  const spec = commands[command];
  if (!spec) throw new UsageError(`unknown command "${command}"`);
  const options: ParseArgsConfig['options'] = { help: { type: 'boolean' } };
  for (const [name, flag] of Object.entries(spec.flags)) options[name] = { type: flag.type };
  let values: Values;
  try {
    const parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: command in positionalCounts });
    values = parsed.values as Values;
    const wanted = positionalCounts[command];
    const allowed = typeof wanted === 'number' ? [wanted] : wanted;
    if (allowed !== undefined && values.help !== true && !allowed.includes(parsed.positionals.length)) {
      throw new UsageError(`expects ${allowed.length === 1 ? 'exactly' : 'one of'} ${allowed.join(' or ')} argument(s), got ${parsed.positionals.length}`);
    }
    parsed.positionals.forEach((value, index) => (values[`arg${index}`] = value));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError((err as Error).message);
  }
  for (const [name, flag] of Object.entries(spec.flags)) {
    if (values[name] === undefined && flag.env !== undefined && process.env[flag.env] !== undefined) {
      values[name] = process.env[flag.env];
    }
  }
  return values;
}

function port(values: Values, name: string, fallback: number): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new UsageError(`--${name}: "${String(raw)}" is not a port number`);
  return n;
}

function required(values: Values, name: string): string {
  const raw = values[name];
  if (typeof raw !== 'string' || raw === '') {
    const env = (instanceFlags as Record<string, FlagSpec>)[name]?.env;
    throw new UsageError(`--${name} is required${env === undefined ? '' : ` (or set ${env})`}`);
  }
  return raw;
}

function optional(values: Values, name: string): string | undefined {
  const raw = values[name];
  return typeof raw === 'string' && raw !== '' ? raw : undefined;
}

/**
 * Files mode with --config-dir; Kubernetes mode with --kubeconfig, or, when no config folder is given, with
 * $KUBECONFIG or inside a pod (KUBERNETES_SERVICE_HOST and a ServiceAccount token). An empty value counts as unset,
 * so a pod can clear an image's PGIM_CONFIG_DIR with `value: ""`.
 */
function controlPlaneMode(values: Values): { configDir: string; kubernetes?: KubernetesOptions } {
  const configDir = optional(values, 'config-dir');
  const kubeconfig = optional(values, 'kubeconfig');
  if (configDir !== undefined && kubeconfig !== undefined) {
    throw new UsageError('--config-dir (PGIM_CONFIG_DIR) and --kubeconfig (PGIM_KUBECONFIG) exclude each other: pick files mode or Kubernetes mode');
  }
  if (configDir !== undefined) return { configDir };
  const kubeconfigFile = kubeconfig ?? ambientKubeconfig();
  if (kubeconfigFile === undefined && !inClusterAvailable()) {
    throw new UsageError('--config-dir is required (or set PGIM_CONFIG_DIR), unless pgim runs in Kubernetes mode: --kubeconfig, $KUBECONFIG, or a pod with a ServiceAccount token');
  }
  const clusterName = optional(values, 'cluster-name');
  if (clusterName === undefined) throw new UsageError('--cluster-name is required in Kubernetes mode (or set CLUSTER_NAME)');
  return { configDir: '', kubernetes: { kubeconfig: kubeconfigFile, namespace: optional(values, 'namespace'), clusterName } };
}

/** A boolean flag, or its environment variable: true/1/yes/on or false/0/no/off/empty. */
function flag(values: Values, name: string): boolean {
  const raw = values[name];
  if (raw === undefined || typeof raw === 'boolean') return raw === true;
  const text = raw.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(text)) return true;
  if (['false', '0', 'no', 'off', ''].includes(text)) return false;
  throw new UsageError(`--${name}: "${raw}" is not true or false`);
}

function instanceOptions(values: Values, forRender = false): InstanceOptions {
  const onExit = values['on-postgres-exit'] ?? 'restart';
  if (onExit !== 'restart' && onExit !== 'exit') throw new UsageError('--on-postgres-exit must be restart or exit');
  const str = (name: string, fallback: string): string => (typeof values[name] === 'string' ? values[name] : fallback);
  const podName = values['pod-name'];
  return {
    ...controlPlaneMode(values),
    // render starts nothing and reads no PGDATA; --pgdata is accepted there only for symmetry with run.
    pgdata: forRender ? (optional(values, 'pgdata') ?? '') : required(values, 'pgdata'),
    podName: typeof podName === 'string' && podName !== '' ? podName : undefined,
    runtimeDir: str('runtime-dir', '/controller'),
    pgPort: port(values, 'pg-port', 5432),
    statusPort: port(values, 'status-port', 8000),
    metricsPort: port(values, 'metrics-port', 9187),
    listenAddress: str('listen-address', '*'),
    user: str('user', 'postgres'),
    onPostgresExit: onExit,
    // render checks with PostgreSQL where its binaries are present, and says so where they are not.
    pgBinDir: forRender ? (tryFindPgBinDir() ?? '') : findPgBinDir(),
    statusTls: flag(values, 'status-tls'),
    metricsTls: flag(values, 'metrics-tls'),
    tablespacesDir: optional(values, 'tablespaces-dir'),
  };
}

async function status(values: Values): Promise<number> {
  const { fetchStatus, formatStatus } =
    typeof PGIM_COMMAND_BUNDLES !== 'undefined' ? await commandBundle<typeof import('../src/webserver/client.js')>('status') : await import('../src/webserver/client.js');
  const url = typeof values.url === 'string' ? values.url : `http://127.0.0.1:${port({ p: process.env.PGIM_STATUS_PORT }, 'p', 8000)}/pg/status`;
  let response;
  try {
    const ca = typeof values.cacert === 'string' ? await readFile(values.cacert) : undefined;
    response = await fetchStatus(url, { ...(ca ? { ca } : {}), insecure: values.insecure === true });
  } catch (err) {
    process.stderr.write(`pgim status: cannot reach ${url}: ${(err as Error).message}\n`);
    return ExitCode.failure;
  }
  if (values.json === true) process.stdout.write(`${response.raw}\n`);
  else if (response.document) process.stdout.write(`${formatStatus(response.document)}\n`);
  else process.stdout.write(`HTTP ${response.httpStatus}: ${response.raw}\n`);
  return response.httpStatus === 200 ? ExitCode.ok : ExitCode.failure;
}

async function switchoverCommand(values: Values): Promise<number> {
  // With PGIM_LOG_LEVEL=debug: a JSON line on stderr per step (when the process started, its modules loaded, each
  // replica answered, the election, the write), to see where a slow failover spends its time.
  const trace = process.env.PGIM_LOG_LEVEL === 'debug'
    ? (step: string, detail: Record<string, unknown> = {}): void => {
        process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), step, ...detail })}\n`);
      }
    : undefined;
  trace?.('process started', { at: new Date(performance.timeOrigin).toISOString() });
  const { switchover, SwitchoverRefused } =
    typeof PGIM_COMMAND_BUNDLES !== 'undefined'
      ? await commandBundle<typeof import('../src/replication/switchover.js')>('switchover')
      : await import('../src/replication/switchover.js');
  trace?.('modules loaded');
  try {
    const { from, to } = await switchover(required(values, 'config-dir'), typeof values.to === 'string' ? values.to : undefined, values.failover === true, trace);
    process.stdout.write(`targetPrimary: ${from} -> ${to}\n`);
    return ExitCode.ok;
  } catch (err) {
    if (!(err instanceof SwitchoverRefused)) throw err;
    process.stderr.write(`pgim switchover: refused: ${err.message}\n`);
    return ExitCode.failure;
  }
}

async function certs(values: Values): Promise<number> {
  const cluster = required(values, 'cluster');
  const instances = Number(values.instances ?? 3);
  if (!Number.isInteger(instances) || instances < 1) throw new UsageError('--instances must be a positive integer');
  const hosts = typeof values.hosts === 'string' ? values.hosts.split(',').map((h) => h.trim()).filter(Boolean) : [];
  // Loaded only here: the X.509 generator is not part of the daemon.
  const { generateClusterCertificates } = await import('../src/tls/generate.js');
  const result = await generateClusterCertificates({ cluster, instances, hosts, outDir: required(values, 'out') });
  for (const file of result.written) process.stdout.write(`created ${file}\n`);
  for (const file of result.kept) process.stdout.write(`kept    ${file} (valid)\n`);
  return ExitCode.ok;
}

/**
 * CNPG's `instance status`: GET /pg/status on this instance, https first (the CA in the runtime dir, no host name
 * check, as CNPG), plain http when the port does not speak TLS; prints the raw document, exit 1 on any other answer.
 */
async function instanceStatus(): Promise<number> {
  const statusPort = port({ p: process.env.PGIM_STATUS_PORT }, 'p', 8000);
  const ca = await readFile(join(process.env.PGIM_RUNTIME_DIR ?? '/controller', 'certificates', 'server-ca.crt')).catch(() => undefined);
  const { fetchStatus } =
    typeof PGIM_COMMAND_BUNDLES !== 'undefined' ? await commandBundle<typeof import('../src/webserver/client.js')>('status') : await import('../src/webserver/client.js');
  let response;
  try {
    response = await fetchStatus(`https://localhost:${statusPort}/pg/status`, { ...(ca ? { ca } : { insecure: true }), caOnly: true }).catch(
      (err: unknown) => {
        // A plain-HTTP port answers a TLS ClientHello with garbage: that is Go's http.ErrSchemeMismatch in CNPG.
        if (/EPROTO|wrong version number|packet length too long/i.test((err as Error).message)) {
          return fetchStatus(`http://localhost:${statusPort}/pg/status`);
        }
        throw err;
      },
    );
  } catch (err) {
    process.stderr.write(`pgim instance status: cannot reach the status port ${statusPort}: ${(err as Error).message}\n`);
    return ExitCode.failure;
  }
  if (response.httpStatus !== 200) {
    process.stderr.write(`pgim instance status: invalid status code: ${response.httpStatus}: ${response.raw}\n`);
    return ExitCode.failure;
  }
  process.stdout.write(response.raw);
  return ExitCode.ok;
}

/** `instance run|init|join|restore|status|...`: CNPG's command lines (src/options/cnpg-invocation.ts). */
async function cnpgCommand(argv: string[]): Promise<number> {
  const translation = translateCnpgInvocation(argv, process.env);
  const what = argv.slice(0, argv[0] === 'instance' ? 2 : 1).join(' ');
  switch (translation.kind) {
    case 'usage':
      process.stderr.write(`pgim ${what}: ${translation.message}\n`);
      return ExitCode.usage;
    case 'not-implemented':
      process.stderr.write(`pgim ${what}: not implemented yet: ${translation.message}\n`);
      return ExitCode.config;
    case 'status':
      return instanceStatus();
    case 'pgim': {
      Object.assign(process.env, translation.env);
      const [command = '', ...rest] = translation.argv;
      let options;
      try {
        const base = instanceOptions(parse(command, rest));
        options = {
          ...base,
          // CNPG's command lines come from its operator's pod templates and Jobs: the operator owns the phase.
          ...(base.kubernetes === undefined ? {} : { kubernetes: { ...base.kubernetes, operatorDriven: true } }),
          initdbFlags: translation.initdbFlags,
          postInitRefsFolders: translation.postInitRefsFolders,
          cnpg: translation.expectations,
        };
      } catch (err) {
        if (!(err instanceof UsageError)) throw err;
        process.stderr.write(`pgim ${what}: ${err.message}\n`);
        return ExitCode.usage;
      }
      const daemon = await import('../src/daemon/run.js');
      if (command === 'init') return daemon.initCommand(options);
      if (command === 'join') return daemon.joinCommand(options);
      if (command === 'restore') return daemon.restoreCommand(options);
      return daemon.runCommand(options);
    }
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'instance') return cnpgCommand(argv);
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${usage()}\n`);
    return command === undefined ? ExitCode.usage : ExitCode.ok;
  }
  try {
    const values = parse(command, rest);
    if (values.help === true) {
      process.stdout.write(`${usage(command)}\n`);
      return ExitCode.ok;
    }
    // Each command loads its own modules: `wal-archive` runs once per WAL segment and must not pay for the daemon.
    const daemon = (): Promise<typeof import('../src/daemon/run.js')> => import('../src/daemon/run.js');
    switch (command) {
      case 'run':
        return await (await daemon()).runCommand(instanceOptions(values));
      case 'init':
        return await (await daemon()).initCommand(instanceOptions(values));
      case 'join':
        return await (await daemon()).joinCommand(instanceOptions(values));
      case 'certs':
        return await certs(values);
      case 'switchover':
        return await switchoverCommand(values);
      case 'wal-archive': {
        // Loaded alone: this runs once per WAL segment and must start fast.
        const { walArchiveCommand } =
          typeof PGIM_COMMAND_BUNDLES !== 'undefined'
            ? await commandBundle<typeof import('../src/backup/wal-archive.js')>('wal-archive')
            : await import('../src/backup/wal-archive.js');
        return await walArchiveCommand({
          walPath: String(values.arg0),
          pgdata: optional(values, 'pgdata') ?? optional(values, 'pg-data') ?? process.cwd(),
          runtimeDir: optional(values, 'runtime-dir') ?? '/controller',
        });
      }
      case 'restore':
        return await (await daemon()).restoreCommand(instanceOptions(values));
      case 'wal-restore': {
        // Loaded alone: this runs once per WAL segment during a recovery and must start fast.
        const { walRestoreCommand } =
          typeof PGIM_COMMAND_BUNDLES !== 'undefined'
            ? await commandBundle<typeof import('../src/backup/wal-restore.js')>('wal-restore')
            : await import('../src/backup/wal-restore.js');
        return await walRestoreCommand({ walName: String(values.arg0), destination: String(values.arg1), runtimeDir: optional(values, 'runtime-dir') ?? '/controller' });
      }
      case 'backup': {
        if (values.arg0 !== undefined) {
          // CNPG's `backup <name>`: its operator's exec into the pod it chose for Backup <name>.
          const { requestBackup } =
            typeof PGIM_COMMAND_BUNDLES !== 'undefined'
              ? await commandBundle<typeof import('../src/backup/backup-request.js')>('backup-request')
              : await import('../src/backup/backup-request.js');
          const refused = await requestBackup(process.env.PGIM_RUNTIME_DIR ?? '/controller', String(values.arg0));
          if (refused === undefined) return ExitCode.ok;
          process.stderr.write(`pgim backup ${String(values.arg0)}: ${refused}\n`);
          return ExitCode.failure;
        }
        const { backupCommand } =
          typeof PGIM_COMMAND_BUNDLES !== 'undefined' ? await commandBundle<typeof import('../src/backup/cli.js')>('backup') : await import('../src/backup/cli.js');
        return await backupCommand({ name: optional(values, 'name'), url: optional(values, 'url') });
      }
      case 'render':
        return await (await daemon()).renderCommand(instanceOptions(values, true), required(values, 'out'));
      default:
        return await status(values);
    }
  } catch (err) {
    if (err instanceof CannotStartError) {
      // The binaries are looked for while the flags are read, before any command has its logger.
      // Loaded here only: pino is not part of a `wal-archive` start.
      const { createRootLogger } = await import('../src/log/logger.js');
      createRootLogger({ pod: process.env.POD_NAME ?? '' }).error({ error: err.message, exitCode: err.exitCode }, 'pgim cannot start postgres');
      return err.exitCode;
    }
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`pgim ${command}: ${err.message}\n\n${usage(command)}\n`);
    return ExitCode.usage;
  }
}

process.exitCode = await main(process.argv.slice(2));
