import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort, pgBinDir, removeTempDir, serviceDirectory } from '../env.js';
import { commonParameters, waitReadWrite, type Login } from '../pg.js';
import type { TrackedProcess } from '../proc.js';
import { instanceName, type SystemContext } from './context.js';
import { stopDaemon } from './daemon.js';
import { initdbOptions, writePrivateFile } from './postgres-files.js';
import type { DatabaseSystem, StartedCommand, StatusEndpoints, StopTimings } from './types.js';

export const superuserPassword = 'patroni-bench-pw';
const replicationPassword = 'patroni-bench-repl-pw';

/** Patroni's `bootstrap.initdb` list form of the shared initdb options (`--name=value` -> `{ name: value }`). */
function patroniInitdbOptions(): Record<string, string>[] {
  return initdbOptions
    .filter((option) => !option.startsWith('--username='))
    .map((option) => {
      const [name = '', value = ''] = option.slice(2).split('=');
      return { [name]: value };
    });
}

export interface PatroniMemberSettings {
  /** The Patroni cluster name (DCS key prefix). */
  scope: string;
  /** The member name (also its application_name when it streams). */
  name: string;
  pgPort: number;
  restPort: number;
  pgdata: string;
  /** The service account's folder for .pgpass. */
  home: string;
  socketDir: string;
  etcdHost: string;
  /** A replicated cluster needs pg_rewind so a failed primary can rejoin (wal_log_hints is on in every system). */
  usePgRewind: boolean;
  /** Extra PostgreSQL settings on top of the shared ones. */
  parameters?: Readonly<Record<string, string>>;
  /** Patroni's `synchronous_mode` (one synchronous standby, chosen by Patroni). */
  synchronousMode?: boolean;
  /**
   * TLS as pgim encrypts: the server offers TLS 1.3 (clients that prefer it, as libpq does by default, get it) and
   * replication must use it (`hostssl`, `sslmode=verify-full` against the CA). Without it Patroni runs as it does by
   * default, every connection in clear text.
   */
  tls?: PatroniTls | undefined;
}

/** The files of a Patroni member's TLS: its server pair and the CA its replicas verify it with (0600, the service user's). */
export interface PatroniTls {
  certFile: string;
  keyFile: string;
  caFile: string;
}

/** One member's patroni.yml: the reference configuration (loop_wait 10, ttl 30) on the shared parameters. */
export function patroniConfig(settings: PatroniMemberSettings): Record<string, unknown> {
  const listen = `127.0.0.1:${settings.pgPort}`;
  const rest = `127.0.0.1:${settings.restPort}`;
  const { tls } = settings;
  const hba = [
    'local all all peer',
    'host all all 127.0.0.1/32 scram-sha-256',
    'host all all ::1/128 scram-sha-256',
    `${tls === undefined ? 'host' : 'hostssl'} replication replicator 127.0.0.1/32 scram-sha-256`,
  ];
  const tlsParameters = tls === undefined ? {} : { ssl: 'on', ssl_cert_file: tls.certFile, ssl_key_file: tls.keyFile };
  const parameters = { ...commonParameters, ...tlsParameters, ...settings.parameters };
  const replicationTls = tls === undefined ? {} : { sslmode: 'verify-full', sslrootcert: tls.caFile };
  return {
    scope: settings.scope,
    name: settings.name,
    log: { level: 'INFO' },
    restapi: { listen: rest, connect_address: rest },
    etcd3: { host: settings.etcdHost },
    bootstrap: {
      dcs: {
        ttl: 30,
        loop_wait: 10,
        retry_timeout: 10,
        ...(settings.synchronousMode === true ? { synchronous_mode: true } : {}),
        postgresql: { use_pg_rewind: settings.usePgRewind, use_slots: false, parameters },
      },
      initdb: patroniInitdbOptions(),
      pg_hba: hba,
    },
    postgresql: {
      listen,
      connect_address: listen,
      data_dir: settings.pgdata,
      bin_dir: pgBinDir,
      pgpass: join(settings.home, 'pgpass'),
      authentication: {
        superuser: { username: 'postgres', password: superuserPassword },
        replication: { username: 'replicator', password: replicationPassword, ...replicationTls },
      },
      parameters: { ...parameters, unix_socket_directories: settings.socketDir },
      pg_hba: hba,
    },
  };
}

/**
 * Debian's Patroni 3.0.2 with one etcd member, configured as the reference measurements were (loop_wait 10, ttl 30),
 * on the same PostgreSQL binaries and parameters. Each instance has its own scope, so bootstraps never meet.
 */
export class PatroniSystem implements DatabaseSystem {
  readonly kind = 'patroni';
  readonly label = 'patroni';
  readonly pgdata: string;
  readonly logFile: string;
  readonly endpoints: StatusEndpoints;
  readonly login: Login;
  private readonly dir: string;
  private readonly configFile: string;
  /** The Patroni cluster name (DCS key prefix): unique per instance, so every bootstrap starts from a clean DCS. */
  private readonly scope: string;
  private daemon: TrackedProcess | undefined;
  private readonly restUrl: string;

  private constructor(private readonly context: SystemContext, pgPort: number, private readonly restPort: number) {
    this.scope = instanceName('patroni');
    this.dir = join(context.workDir, this.scope);
    this.pgdata = join(this.dir, 'pgdata');
    this.logFile = join(this.dir, 'patroni.log');
    this.configFile = join(this.dir, 'home', 'patroni.yml');
    this.login = { port: pgPort, user: 'postgres', password: superuserPassword, database: 'postgres' };
    const base = `http://127.0.0.1:${restPort}`;
    this.restUrl = base;
    this.endpoints = { readiness: `${base}/health`, statusDocument: `${base}/patroni`, metrics: `${base}/metrics` };
    context.processes.trackDataDirectory(this.pgdata);
  }

  /** `parameters`: settings a benchmark adds on top of the shared ones (B16's logging). */
  static async create(context: SystemContext, parameters: Readonly<Record<string, string>> = {}): Promise<PatroniSystem> {
    if (context.etcdHost === undefined) throw new Error('Patroni needs etcd, which was not started');
    const pgPort = await freePort();
    const system = new PatroniSystem(context, pgPort, await freePort());
    await mkdir(system.dir, { recursive: true, mode: 0o755 });
    // Patroni writes .pgpass and its config lives there: a folder of the service account's own.
    const home = await serviceDirectory(join(system.dir, 'home'));
    const socketDir = await serviceDirectory(join(system.dir, 'run'));
    await serviceDirectory(system.pgdata);
    const config = patroniConfig({
      scope: system.scope,
      name: 'member1',
      pgPort,
      restPort: system.restPort,
      pgdata: system.pgdata,
      home,
      socketDir,
      etcdHost: context.etcdHost,
      usePgRewind: false,
      parameters,
    });
    await writePrivateFile(system.configFile, stringify(config));
    return system;
  }

  async initialise(): Promise<void> {
    await this.start();
    await waitReadWrite(this.login, 120_000);
    await this.stop();
  }

  start(): Promise<StartedCommand> {
    if (this.daemon?.running === true) throw new Error('patroni is already running');
    this.daemon = this.context.processes.spawn('patroni', 'patroni', [this.configFile], {
      asServiceUser: true,
      logFile: this.logFile,
      cwd: join(this.dir, 'home'),
    });
    return Promise.resolve({});
  }

  stop(): Promise<StopTimings> {
    return stopDaemon(this.daemon, this.pgdata, this.label, this.logFile);
  }


  /** Patroni notices a dead postmaster in its next HA loop and brings it back itself. */
  recoverFromPostmasterKill(): Promise<void> {
    if (this.daemon?.running !== true) return Promise.reject(new Error(`patroni exited; see ${this.logFile}`));
    return Promise.resolve();
  }

  /** Patroni's dynamic configuration in the DCS; it applies it in its HA loop (woken by the request). */
  async changeParameter(name: string, value: string): Promise<void> {
    const response = await fetch(`${this.restUrl}/config`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ postgresql: { parameters: { [name]: value } } }),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`Patroni PATCH /config: ${response.status} ${text}`);
  }

  /**
   * `POST /reload` (what `patronictl reload` sends): Patroni only flags it and acts in its next HA loop (up to
   * `loop_wait`), re-reading its config and reloading PostgreSQL.
   */
  async reload(): Promise<void> {
    const response = await fetch(`${this.restUrl}/reload`, { method: 'POST', signal: AbortSignal.timeout(30_000) });
    const text = await response.text();
    if (!response.ok) throw new Error(`Patroni POST /reload: ${response.status} ${text}`);
  }

  daemonPid(): number | undefined {
    return this.daemon?.running === true ? this.daemon.pid : undefined;
  }

  async destroy(): Promise<void> {
    await this.daemon?.terminate(30_000);
    await removeTempDir(this.dir);
  }
}
