import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeClusterYaml, writeConfigDir, type TestClusterOptions } from '../../test-kit/config.js';
import { handToPostgres, postgresUser } from '../../test-kit/env.js';
import { pgimArgs, pgimLaunch, pgimNodeArgs, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';
import { freePort, isRoot, removeTempDir } from '../env.js';
import { clusterParameters, type Login } from '../pg.js';
import type { TrackedProcess } from '../proc.js';
import { instanceName, type SystemContext } from './context.js';
import { expectStillRunning, stopDaemon } from './daemon.js';
import type { DatabaseSystem, StartedCommand, StatusEndpoints, StopTimings } from './types.js';

const clusterName = 'bench';
const secrets = { appPassword: 'pgim-bench-app-pw', superuserPassword: 'pgim-bench-super-pw' };

export interface PgimSettings {
  /**
   * spec.smartShutdownTimeout. CloudNativePG's default (180 s) would make every stop with a connected client last
   * three minutes, so the benchmarks use 5 s (smart first, as CNPG does) and 0 (pgim then skips smart: pg_ctl fast).
   */
  smartShutdownTimeout: number;
  label?: string;
  /** PostgreSQL parameters a benchmark adds to the manifest's (B16: log_statement). */
  parameters?: Readonly<Record<string, string>>;
  /** spec.enableSuperuserAccess, for benchmarks that create databases or read other sessions (`superuserLogin`). */
  superuserAccess?: boolean;
}

/** pgim as a container would run it: `pgim run` from a files-mode config folder, dropping to postgres when root. */
export class PgimSystem implements DatabaseSystem {
  readonly kind = 'pgim';
  readonly label: string;
  readonly pgdata: string;
  readonly logFile: string;
  readonly endpoints: StatusEndpoints;
  /** The Prometheus exporter (`/metrics` on the metrics port). */
  readonly metricsUrl: string;
  private readonly dir: string;
  readonly paths: PgimPaths;
  private daemon: TrackedProcess | undefined;
  /** What cluster.yaml says; `changeParameter` rewrites it with one value changed. */
  private manifest: TestClusterOptions;

  private constructor(private readonly context: SystemContext, private readonly ports: PgimPorts, settings: PgimSettings, pgdata?: string) {
    this.label = settings.label ?? 'pgim';
    this.dir = join(context.workDir, instanceName('pgim'));
    this.paths = { configDir: join(this.dir, 'config'), pgdata: pgdata ?? join(this.dir, 'pgdata'), runtimeDir: join(this.dir, 'runtime') };
    this.pgdata = this.paths.pgdata;
    this.logFile = join(this.dir, 'pgim.log');
    const base = `http://127.0.0.1:${ports.statusPort}`;
    this.metricsUrl = `http://127.0.0.1:${ports.metricsPort}/metrics`;
    this.endpoints = { readiness: `${base}/readyz`, statusDocument: `${base}/pg/status`, metrics: this.metricsUrl };
    this.manifest = { name: clusterName, enableSuperuserAccess: settings.superuserAccess === true, smartShutdownTimeout: settings.smartShutdownTimeout, stopDelay: 30, parameters: { ...clusterParameters, ...settings.parameters } };
    context.processes.trackDataDirectory(this.pgdata);
  }

  /** `shareDataWith`: run over another pgim's data directory and ports (never both at once), with other settings. */
  static async create(context: SystemContext, settings: PgimSettings = { smartShutdownTimeout: 5 }, shareDataWith?: PgimSystem): Promise<PgimSystem> {
    const ports = shareDataWith?.ports ?? { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
    const system = new PgimSystem(context, ports, settings, shareDataWith?.pgdata);
    await mkdir(system.dir, { recursive: true, mode: 0o755 });
    await writeConfigDir(system.paths.configDir, system.manifest, secrets);
    await handToPostgres(system.paths.configDir);
    return system;
  }

  get login(): Login {
    return { port: this.ports.pgPort, user: 'app', password: secrets.appPassword, database: 'app' };
  }

  /** The `postgres` superuser over TCP (only with `superuserAccess`). */
  get superuserLogin(): Login {
    return { ...this.login, user: 'postgres', password: secrets.superuserPassword };
  }

  private args(command: 'run' | 'init'): string[] {
    return pgimNodeArgs([command, ...pgimArgs(this.paths, this.ports), ...(isRoot ? ['--user', postgresUser] : [])]);
  }

  async initialise(): Promise<void> {
    await this.context.processes.mustRun('pgim init', process.execPath, this.args('init'), { logFile: this.logFile });
  }

  start(): Promise<StartedCommand> {
    if (this.daemon?.running === true) throw new Error(`${this.label} is already running`);
    // pgim drops to postgres by itself, so it starts as the harness's user, like a container's PID 1 would.
    this.daemon = this.context.processes.spawn('pgim', process.execPath, this.args('run'), { logFile: this.logFile, env: { ...pgimLaunch.env, PGIM_LOG_LEVEL: 'info' } });
    return Promise.resolve({});
  }

  stop(): Promise<StopTimings> {
    return stopDaemon(this.daemon, this.pgdata, this.label, this.logFile);
  }

  /** pgim restarts the postmaster itself: nothing to do. */
  recoverFromPostmasterKill(): Promise<void> {
    return expectStillRunning(this.daemon, this.label, this.logFile);
  }

  /** A temp file renamed over cluster.yaml, as an editor or a ConfigMap update does it. */
  async changeParameter(name: string, value: string): Promise<void> {
    this.manifest = { ...this.manifest, parameters: { ...this.manifest.parameters, [name]: value } };
    await writeClusterYaml(this.paths.configDir, this.manifest);
  }

  /** Replaces cluster.yaml's extra spec fields (e.g. `monitoring`), renamed into place like `changeParameter`. */
  async changeSpec(spec: Record<string, unknown>): Promise<void> {
    this.manifest = { ...this.manifest, spec };
    await writeClusterYaml(this.paths.configDir, this.manifest);
  }

  /**
   * Rotates the owner's (app) password the way a Secret update does: a new `password` file renamed over the old one
   * in `secrets/bench-app/`. pgim is to ALTER ROLE it; `login` keeps the password pgim started with.
   */
  async rotateAppPassword(password: string): Promise<void> {
    const dir = this.secretDir('app');
    await writeFile(join(dir, '.password.new'), password);
    await rename(join(dir, '.password.new'), join(dir, 'password'));
  }

  /**
   * The folder of the cluster's Secret `bench-<suffix>` (`secrets/bench-server/` for `server`), where a benchmark
   * puts or replaces its keys as a mounted Secret would change.
   */
  secretDir(suffix: string): string {
    return join(this.paths.configDir, 'secrets', `${clusterName}-${suffix}`);
  }

  /** The files-mode config folder (ConfigMaps go to `configmaps/<name>/<key>`). */
  get configDir(): string {
    return this.paths.configDir;
  }

  daemonPid(): number | undefined {
    return this.daemon?.running === true ? this.daemon.pid : undefined;
  }

  async destroy(): Promise<void> {
    await this.daemon?.terminate(30_000);
    await removeTempDir(this.dir);
  }
}
