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

const superuserPassword = 'patroni-bench-pw';
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

  private constructor(private readonly context: SystemContext, pgPort: number, private readonly restPort: number) {
    this.scope = instanceName('patroni');
    this.dir = join(context.workDir, this.scope);
    this.pgdata = join(this.dir, 'pgdata');
    this.logFile = join(this.dir, 'patroni.log');
    this.configFile = join(this.dir, 'home', 'patroni.yml');
    this.login = { port: pgPort, user: 'postgres', password: superuserPassword, database: 'postgres' };
    const base = `http://127.0.0.1:${restPort}`;
    this.endpoints = { readiness: `${base}/health`, statusDocument: `${base}/patroni` };
    context.processes.trackDataDirectory(this.pgdata);
  }

  static async create(context: SystemContext): Promise<PatroniSystem> {
    if (context.etcdHost === undefined) throw new Error('Patroni needs etcd, which was not started');
    const system = new PatroniSystem(context, await freePort(), await freePort());
    await mkdir(system.dir, { recursive: true, mode: 0o755 });
    // Patroni writes .pgpass and its config lives there: a folder of the service account's own.
    const home = await serviceDirectory(join(system.dir, 'home'));
    const socketDir = await serviceDirectory(join(system.dir, 'run'));
    await serviceDirectory(system.pgdata);
    await writePrivateFile(system.configFile, stringify(system.config(context.etcdHost, home, socketDir)));
    return system;
  }

  private config(etcdHost: string, home: string, socketDir: string): Record<string, unknown> {
    const listen = `127.0.0.1:${this.login.port}`;
    const rest = `127.0.0.1:${this.restPort}`;
    const hba = [
      'local all all peer',
      'host all all 127.0.0.1/32 scram-sha-256',
      'host all all ::1/128 scram-sha-256',
      'host replication replicator 127.0.0.1/32 scram-sha-256',
    ];
    return {
      scope: this.scope,
      name: 'member1',
      log: { level: 'INFO' },
      restapi: { listen: rest, connect_address: rest },
      etcd3: { host: etcdHost },
      bootstrap: {
        dcs: {
          ttl: 30,
          loop_wait: 10,
          retry_timeout: 10,
          postgresql: { use_pg_rewind: false, use_slots: false, parameters: { ...commonParameters } },
        },
        initdb: patroniInitdbOptions(),
        pg_hba: hba,
      },
      postgresql: {
        listen,
        connect_address: listen,
        data_dir: this.pgdata,
        bin_dir: pgBinDir,
        pgpass: join(home, 'pgpass'),
        authentication: {
          superuser: { username: 'postgres', password: superuserPassword },
          replication: { username: 'replicator', password: replicationPassword },
        },
        parameters: { ...commonParameters, unix_socket_directories: socketDir },
        pg_hba: hba,
      },
    };
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

  daemonPid(): number | undefined {
    return this.daemon?.running === true ? this.daemon.pid : undefined;
  }

  async destroy(): Promise<void> {
    await this.daemon?.terminate(30_000);
    await removeTempDir(this.dir);
  }
}
