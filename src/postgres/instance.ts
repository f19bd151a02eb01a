import { access, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Cluster } from '../cluster/schema.js';
import type { Credentials } from '../credentials/index.js';
import { ensureDirectory, removeStaleTempFiles, writeFileAtomic } from '../fs/atomic.js';
import { configHashParameter, ensureIncludes, type RenderedConfiguration } from '../render/index.js';
import { checkRenderedSettings, fileOracleErrors } from './config-check.js';
import { readControlData, type ControlData } from './controldata.js';
import { Postmaster } from './postmaster.js';
import { waitForDirectoryRelease } from './proc.js';
import { applyCredentials, ensureApplicationDatabase, ensureSystemRoles } from './roles.js';
import { connectLocal, withLocalClient, type LocalConnection } from './sql.js';
import { queryStatus, type PostgresReportedStatus } from './status.js';
import { runTool } from './tools.js';

export type DataDirectoryState = 'empty' | 'initialized';

export interface ConfigurationWrite {
  /** Files whose bytes changed. */
  changed: string[];
  /** Each file's bytes before the write (undefined: it did not exist). */
  previous: Map<string, Buffer | undefined>;
}

export interface PostgresInstanceOptions {
  binDir: string;
  pgdata: string;
  socketDir: string;
  port: number;
  /** PGPASSFILE for the tools pgim runs. */
  passfile: string;
  logger: Logger;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Client settings a parent shell may have exported; postgres and its tools must not inherit them. */
const clientEnvironment = ['PGPASSWORD', 'PGPASSFILE', 'PGHOST', 'PGHOSTADDR', 'PGUSER', 'PGDATABASE', 'PGSERVICE', 'PGOPTIONS'];

/**
 * Knows *how* to do everything with one PostgreSQL data directory: initdb, config files, start, stop, SQL.
 * It never decides *when*; that is the supervisor's job.
 */
export class PostgresInstance {
  readonly connection: LocalConnection;
  private readonly env: NodeJS.ProcessEnv;

  constructor(private readonly options: PostgresInstanceOptions) {
    this.connection = { socketDir: options.socketDir, port: options.port };
    const env: NodeJS.ProcessEnv = { ...process.env, PG_OOM_ADJUST_FILE: '/proc/self/oom_score_adj', PG_OOM_ADJUST_VALUE: '0' };
    for (const name of clientEnvironment) env[name] = undefined;
    env.PGDATA = options.pgdata;
    env.PGPASSFILE = options.passfile;
    this.env = env;
  }

  get pgdata(): string {
    return this.options.pgdata;
  }

  get binDir(): string {
    return this.options.binDir;
  }

  /**
   * `empty` when PGDATA is missing or an empty folder; `initialized` when it holds a cluster with a valid control
   * file. Anything else is refused: pgim never deletes or re-initialises a folder it does not understand.
   */
  async inspectDataDirectory(): Promise<DataDirectoryState> {
    let entries: string[];
    try {
      entries = await readdir(this.pgdata);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'empty';
      throw err;
    }
    if (entries.length === 0) return 'empty';
    const control = await this.controlData();
    if (control === undefined || !entries.includes('PG_VERSION')) {
      throw new Error(
        `PGDATA ${this.pgdata} is not empty and holds no valid PostgreSQL cluster; refusing to touch it (move it aside or empty it)`,
      );
    }
    return 'initialized';
  }

  controlData(): Promise<ControlData | undefined> {
    return readControlData(this.binDir, this.pgdata, this.options.logger);
  }

  async initdb(signal?: AbortSignal): Promise<void> {
    await ensureDirectory(this.pgdata, 0o700);
    const result = await runTool(
      this.binDir,
      'initdb',
      ['-D', this.pgdata, '--username=postgres', '--auth-local=peer', '--auth-host=scram-sha-256', '--encoding=UTF8',
        '--lc-collate=C', '--lc-ctype=C', '--no-instructions'],
      { logger: this.options.logger, env: this.env, ...(signal === undefined ? {} : { cancelSignal: signal }) },
    );
    if (result.exitCode !== 0) {
      throw new Error(`initdb failed (${result.signal === undefined ? `exit code ${String(result.exitCode)}` : result.signal})`);
    }
  }

  /**
   * Writes every rendered file into PGDATA atomically (0600). Returns what changed and the previous bytes of every
   * file, so a render PostgreSQL refuses can be rolled back.
   */
  async writeConfiguration(rendered: RenderedConfiguration): Promise<ConfigurationWrite> {
    const path = (name: string): string => join(this.pgdata, name);
    await removeStaleTempFiles(this.pgdata);
    const files = new Map<string, string>([
      ['postgresql.conf', ensureIncludes(await readFile(path('postgresql.conf'), 'utf8'))],
      ['custom.conf', rendered.customConf],
      ['override.conf', rendered.overrideConf],
      ['pg_hba.conf', rendered.pgHba],
      ['pg_ident.conf', rendered.pgIdent],
    ]);
    const previous = new Map<string, Buffer | undefined>();
    const changed: string[] = [];
    for (const [name, text] of files) {
      previous.set(name, await readFile(path(name)).catch(() => undefined));
      if ((await writeFileAtomic(path(name), text, 0o600)).changed) changed.push(name);
    }
    return { changed, previous };
  }

  /** Puts back the files a write replaced (a file that did not exist before is left as written). */
  async restoreConfiguration(write: ConfigurationWrite): Promise<void> {
    for (const [name, bytes] of write.previous) {
      if (bytes !== undefined) await writeFileAtomic(join(this.pgdata, name), bytes, 0o600);
    }
  }

  /** PostgreSQL's verdict on a render's settings before it is written (see checkRenderedSettings). */
  checkSettings(rendered: RenderedConfiguration, stagingParent: string): Promise<string[]> {
    return checkRenderedSettings(this.binDir, stagingParent, rendered, this.options.logger);
  }

  /** PostgreSQL's verdict on the files now on disk (needs a running server). */
  fileErrors(): Promise<string[]> {
    return withLocalClient(this.connection, fileOracleErrors);
  }

  /** Reloads and waits until new sessions see `hash`: proof that PostgreSQL loaded this render. */
  async reloadAndConfirm(hash: string, timeoutMs: number): Promise<boolean> {
    await withLocalClient(this.connection, (client) => client.query('SELECT pg_reload_conf()'));
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const loaded = await withLocalClient(this.connection, async (client) => {
        const { rows } = await client.query<{ hash: string }>(`SELECT COALESCE(current_setting('${configHashParameter}', true), '') AS hash`);
        return rows[0]?.hash;
      });
      // eslint-disable-next-line security/detect-possible-timing-attacks -- a configuration hash, not a secret
      if (loaded === hash) return true;
      await sleep(20);
    }
    return false;
  }

  /** Names of settings whose new value waits for a restart. */
  async pendingRestart(): Promise<string[]> {
    return withLocalClient(this.connection, async (client) => {
      const { rows } = await client.query<{ name: string }>('SELECT name FROM pg_settings WHERE pending_restart ORDER BY name');
      return rows.map((r) => r.name);
    });
  }

  async isStandby(): Promise<boolean> {
    try {
      await access(join(this.pgdata, 'standby.signal'));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Waits for processes of an earlier postmaster still working in PGDATA (a killed postmaster's backends exit on
   * their own once they notice), so a new postmaster never meets their shared memory.
   */
  async waitForPreviousProcesses(timeoutMs: number): Promise<void> {
    const left = await waitForDirectoryRelease(this.pgdata, timeoutMs);
    if (left.length > 0) {
      throw new Error(`processes of a previous postmaster still use PGDATA after ${timeoutMs} ms: ${left.join(', ')}`);
    }
  }

  spawn(settings?: Readonly<Record<string, string>>): Promise<Postmaster> {
    return Postmaster.spawn({
      binDir: this.binDir,
      pgdata: this.pgdata,
      env: this.env,
      logger: this.options.logger,
      ...(settings === undefined ? {} : { settings }),
    });
  }

  /** Resolves once `postmaster` accepts connections; rejects if it exits or `signal` aborts first. */
  async waitAccepting(postmaster: Postmaster, signal?: AbortSignal): Promise<void> {
    for (;;) {
      if (!postmaster.running) throw new Error('postgres exited before accepting connections');
      signal?.throwIfAborted();
      try {
        const client = await connectLocal(this.connection, 'postgres', 2000);
        await client.end();
        return;
      } catch {
        await sleep(20);
      }
    }
  }

  /**
   * initdb, then a socket-only start (nothing can connect over TCP before the roles and passwords exist) to create
   * the owner and database and set every password, then a fast stop.
   */
  async bootstrap(cluster: Cluster, credentials: Credentials, rendered: RenderedConfiguration, signal?: AbortSignal): Promise<void> {
    await this.initdb(signal);
    await this.writeConfiguration(rendered);
    const postmaster = await this.spawn({ listen_addresses: '' });
    try {
      await this.waitAccepting(postmaster, signal);
      await withLocalClient(this.connection, async (client) => {
        await ensureApplicationDatabase(client, cluster.bootstrap.owner, cluster.bootstrap.database);
        await ensureSystemRoles(client);
        await applyCredentials(client, credentials);
      });
    } finally {
      await postmaster.stop({ smartSeconds: 0, fastSeconds: 60 });
    }
  }

  async checkpoint(timeoutMs: number): Promise<void> {
    await withLocalClient(this.connection, async (client) => {
      await client.query(`SET statement_timeout = ${Math.max(1, Math.floor(timeoutMs))}`);
      await client.query('CHECKPOINT');
    });
  }

  status(clusterName: string): Promise<PostgresReportedStatus> {
    return withLocalClient(this.connection, (client) => queryStatus(client, clusterName));
  }

  /** `pg_isready` semantics: 0 accepting, 1 rejecting (starting up or shutting down), 2 no response. */
  async isReady(timeoutSeconds = 3): Promise<number> {
    const result = await runTool(
      this.binDir,
      'pg_isready',
      ['-q', '-h', this.connection.socketDir, '-p', String(this.connection.port), '-U', 'postgres', '-d', 'postgres', '-t', String(timeoutSeconds)],
      { logger: this.options.logger, env: this.env, timeoutMs: (timeoutSeconds + 2) * 1000 },
    );
    return result.exitCode ?? 2;
  }

}
