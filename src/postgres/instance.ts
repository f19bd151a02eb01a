import { access, chmod, copyFile, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type pg from 'pg';
import type { Cluster } from '../cluster/schema.js';
import type { Credentials } from '../credentials/index.js';
import { ensureDirectory, removeStaleTempFiles, writeFileAtomic } from '../fs/atomic.js';
import { configHashParameter, ensureIncludes, type RenderedConfiguration } from '../render/index.js';
import { checkRenderedSettings, fileOracleErrors, onlyTopologySettingsChanged } from './config-check.js';
import { readControlData, type ControlData } from './controldata.js';
import { Postmaster } from './postmaster.js';
import { readProcStat, waitForDirectoryRelease } from '../process/proc.js';
import { BootstrapMarker, checkEmptyWalArchiveFlag, checkWalSpace, emptyDirectory, enforceDataDirectoryMode, moveAside } from './datadir.js';
import { inspectPidFile, removeStaleLockFiles } from './pidfile.js';
import { applyCredentials, ensureApplicationDatabase, ensureApplicationOwner, ensureSystemRoles } from './roles.js';
import { runPostInitScripts, type PostInitScripts } from './post-init.js';
import { unsupportedByServer } from '../cluster/initdb.js';
import { ConfigError } from '../errors/index.js';
import { connectLocal, withLocalClient, type LocalConnection } from './sql.js';
import { HeldSession } from './held-session.js';
import { queryStatus, type PostgresReportedStatus } from './status-queries.js';
import { checkDataDirectoryAccess, checkDataDirectoryVersion, checkPortFree, serverMajorVersion, UnusableDataDirectoryError } from './start-checks.js';
import { runTool } from './tools.js';
import { ensureTablespaceFolders, reconcileTablespaces, type TablespaceStorage } from './tablespaces.js';
import { tablespaceLocation, type TablespaceSpec, type TablespaceState } from '../cluster/tablespaces.js';
import { sleep } from '../async/sleep.js';

export interface HaSlotChanges {
  readonly created: string[];
  readonly dropped: string[];
}

/** Creates the wanted `_cnpg_` physical slots (WAL reserved at once) and drops the inactive ones no longer wanted. */
async function reconcileHaSlotsWith(client: pg.Client, wanted: readonly string[]): Promise<HaSlotChanges> {
  const { rows } = await client.query<{ slot_name: string; active: boolean }>(
    "SELECT slot_name, active FROM pg_replication_slots WHERE slot_type = 'physical' AND slot_name LIKE '\\_cnpg\\_%'",
  );
  const existing = new Map(rows.map((r) => [r.slot_name, r.active]));
  const created: string[] = [];
  const dropped: string[] = [];
  for (const slot of wanted) {
    if (existing.has(slot)) continue;
    await client.query('SELECT pg_create_physical_replication_slot($1, true)', [slot]);
    created.push(slot);
  }
  for (const [slot, active] of existing) {
    if (wanted.includes(slot) || active) continue;
    await client.query('SELECT pg_drop_replication_slot($1)', [slot]);
    dropped.push(slot);
  }
  return { created, dropped };
}

/** How long a promotion may take once asked for (pg_promote's own default wait is 60 s). */
const promoteTimeoutMs = 60_000;

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
  runtimeDir: string;
  /** Extra initdb options (CNPG's `--initdb-flags`, checked by src/options/cnpg-invocation.ts); later ones win. */
  initdbFlags?: readonly string[];
  logger: Logger;
  /** listen_addresses: the port is checked free on them before each start. */
  listenAddresses?: string;
  /** Where this instance's tablespace folders are (spec.tablespaces). */
  tablespaces?: TablespaceStorage;
}


/** A postmaster pgim did not start (not our child): fast shutdown, then immediate, waiting on /proc. */
async function stopForeignPostmaster(pid: number): Promise<void> {
  const gone = async (ms: number): Promise<boolean> => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const stat = await readProcStat(pid);
      if (!stat || stat.state === 'Z') return true;
      await sleep(50);
    }
    return false;
  };
  for (const signal of ['SIGINT', 'SIGQUIT', 'SIGKILL'] as const) {
    try {
      process.kill(pid, signal);
    } catch {
      return;
    }
    if (await gone(signal === 'SIGINT' ? 60_000 : 10_000)) return;
  }
}

/** Client settings a parent shell may have exported; postgres and its tools must not inherit them. */
const clientEnvironment = ['PGPASSWORD', 'PGPASSFILE', 'PGHOST', 'PGHOSTADDR', 'PGUSER', 'PGDATABASE', 'PGSERVICE', 'PGOPTIONS'];

/**
 * Knows *how* to do everything with one PostgreSQL data directory: initdb, config files, start, stop, SQL.
 * It never decides *when*; that is the supervisor's job.
 */
export class PostgresInstance {
  readonly connection: LocalConnection;
  private readonly env: NodeJS.ProcessEnv;
  private readonly bootstrapMarker: BootstrapMarker;
  private readonly held: HeldSession;
  private rewindRunning = false;
  private walSegmentBytes: number | undefined;
  private serverMajor: Promise<string | undefined> | undefined;

  constructor(private readonly options: PostgresInstanceOptions) {
    this.connection = { socketDir: options.socketDir, port: options.port };
    const env: NodeJS.ProcessEnv = { ...process.env, PG_OOM_ADJUST_FILE: '/proc/self/oom_score_adj', PG_OOM_ADJUST_VALUE: '0' };
    for (const name of clientEnvironment) env[name] = undefined;
    env.PGDATA = options.pgdata;
    env.PGPASSFILE = options.passfile;
    this.env = env;
    this.bootstrapMarker = new BootstrapMarker(options.pgdata, options.runtimeDir);
    this.held = new HeldSession(this.connection);
  }

  /** A short read-only probe on pgim's held session (see HeldSession). */
  withHeldSession<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    return this.held.run(fn);
  }

  /** Closes the held session before postgres stops, so a smart shutdown does not wait for it. */
  releaseHeldSession(): Promise<void> {
    return this.held.release();
  }

  get pgdata(): string {
    return this.options.pgdata;
  }

  get binDir(): string {
    return this.options.binDir;
  }

  /**
   * `empty` when PGDATA is missing or an empty folder; `initialized` when it holds a cluster with a valid control
   * file. After an interrupted bootstrap (its marker is still there), a PGDATA without a valid control file is
   * emptied and one with a valid control file is moved aside, never deleted; both are then `empty`. Anything else
   * is refused: pgim never deletes or re-initialises a folder it does not understand.
   */
  async inspectDataDirectory(): Promise<DataDirectoryState> {
    let entries: string[];
    try {
      entries = await readdir(this.pgdata);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return 'empty';
      if (code === 'EACCES') {
        throw new UnusableDataDirectoryError(`PGDATA ${this.pgdata}: permission denied listing it: give it to the user pgim and postgres run as (chown -R)`);
      }
      throw err;
    }
    // Before anything that reads "no control file" as "no cluster": an unreadable pg_control is a permission problem.
    if (entries.length > 0) await checkDataDirectoryAccess(this.pgdata);
    // pg_controldata and `postgres -V` (for the version check below) run side by side: both are on every start's path.
    const serverMajor = entries.length === 0 ? undefined : this.serverMajorVersion();
    serverMajor?.catch(() => undefined);
    const control = entries.length === 0 ? undefined : await this.controlData();
    this.walSegmentBytes ??= control?.walSegmentBytes;
    if (await this.bootstrapMarker.isSet()) {
      if (control === undefined) {
        this.options.logger.warn({ pgdata: this.pgdata }, 'the last bootstrap was interrupted before a valid control file: emptying PGDATA');
        await emptyDirectory(this.pgdata);
      } else {
        const aside = await moveAside(this.pgdata);
        this.options.logger.warn({ pgdata: this.pgdata, movedTo: aside }, 'the last bootstrap was interrupted: its cluster was moved aside');
      }
      return 'empty';
    }
    if (entries.length === 0) return 'empty';
    await checkDataDirectoryVersion(this.pgdata, this.binDir, await serverMajor);
    if (control === undefined || !entries.includes('PG_VERSION')) {
      throw new UnusableDataDirectoryError(
        `PGDATA ${this.pgdata} is not empty and holds no valid PostgreSQL cluster; refusing to touch it (move it aside or empty it)`,
      );
    }
    return 'initialized';
  }

  /** The binaries' major version, asked once. */
  private serverMajorVersion(): Promise<string | undefined> {
    this.serverMajor ??= serverMajorVersion(this.binDir, this.options.logger).catch((err: unknown) => {
      this.serverMajor = undefined;
      throw err;
    });
    return this.serverMajor;
  }

  controlData(): Promise<ControlData | undefined> {
    return readControlData(this.binDir, this.pgdata, this.options.logger);
  }

  /** initdb with pgim's fixed options, then the Cluster's (`options`), then the operator's `--initdb-flags`. */
  async initdb(options: readonly string[], signal?: AbortSignal): Promise<void> {
    await ensureDirectory(this.pgdata, 0o700);
    await this.bootstrapMarker.set();
    const result = await runTool(
      this.binDir,
      'initdb',
      ['-D', this.pgdata, '--username=postgres', '--auth-local=peer', '--auth-host=scram-sha-256', '--no-instructions', ...options, ...(this.options.initdbFlags ?? [])],
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
    // A replica must hold standby.signal; promotion (not a render) is what removes it.
    if (rendered.standby && (await writeFileAtomic(path('standby.signal'), '', 0o600)).changed) changed.push('standby.signal');
    return { changed, previous };
  }

  /**
   * A replica's first start: `pg_basebackup` from the primary over TLS with the streaming_replica certificate (no
   * password), WAL streamed alongside, progress in the log. PGDATA must be empty.
   */
  async basebackup(conninfo: string, signal?: AbortSignal, primaryTablespaces: readonly { name: string; location: string }[] = [], keepMarker = false): Promise<void> {
    await ensureDirectory(this.pgdata, 0o700);
    await this.bootstrapMarker.set();
    const result = await runTool(
      this.binDir,
      'pg_basebackup',
      ['-D', this.pgdata, '-d', conninfo, '-X', 'stream', '-c', 'fast', '--progress', '--verbose', '--no-password', ...this.tablespaceMappings(primaryTablespaces)],
      { logger: this.options.logger, env: this.env, ...(signal === undefined ? {} : { cancelSignal: signal }) },
    );
    if (result.exitCode !== 0) {
      throw new Error(`pg_basebackup failed (${result.signal === undefined ? `exit code ${String(result.exitCode)}` : result.signal})`);
    }
    if (!keepMarker) await this.bootstrapMarker.clear();
  }

  /** The end of a bootstrap that took more than basebackup() (a clone promoted into a new cluster). */
  async bootstrapDone(): Promise<void> {
    await this.bootstrapMarker.clear();
  }

  /** Whether this standby streams without a replication slot (a replica cluster's designated primary does). */
  async streamsWithoutSlot(): Promise<boolean> {
    // On the held session: asked right before a promotion, which should not wait for one more backend to start.
    return this.withHeldSession(async (client) => {
      const { rows } = await client.query<{ none: boolean }>("SELECT current_setting('primary_slot_name') = '' AS none");
      return rows[0]?.none === true;
    });
  }

  /**
   * pg_basebackup's `--tablespace-mapping` from each of the primary's tablespace folders to this instance's own
   * (`<root>/<name>/data`), where they differ (instances on one host in files mode); `=` and `\` escaped as
   * pg_basebackup reads them.
   */
  private tablespaceMappings(primary: readonly { name: string; location: string }[]): string[] {
    const root = this.options.tablespaces?.root;
    if (root === undefined) return [];
    const escape = (path: string): string => path.replace(/[\\=]/g, (c) => `\\${c}`);
    return primary
      .map(({ name, location }) => ({ from: location, to: tablespaceLocation(root, name) }))
      .filter(({ from, to }) => from !== '' && from !== to)
      .map(({ from, to }) => `--tablespace-mapping=${escape(from)}=${escape(to)}`);
  }

  /** `<root>/<name>/data` for each tablespace (see ensureTablespaceFolders): the names not ready, with why. */
  async ensureTablespaceFolders(tablespaces: readonly TablespaceSpec[]): Promise<Map<string, string>> {
    const storage = this.options.tablespaces;
    return storage === undefined ? new Map() : ensureTablespaceFolders(storage, tablespaces);
  }

  /** The primary creates and owns the spec's tablespaces (CNPG's tablespace reconciler). */
  async reconcileTablespaces(tablespaces: readonly TablespaceSpec[]): Promise<TablespaceState[]> {
    const storage = this.options.tablespaces;
    if (storage === undefined || tablespaces.length === 0) return [];
    return withLocalClient(this.connection, (client) => reconcileTablespaces(client, storage, tablespaces));
  }

  /**
   * On a replica: the tablespaces it holds whose folder is not its own (`<root>/<name>/data`): a tablespace created
   * while it streamed is replayed at the primary's location, which on one shared host is the primary's folder.
   */
  async foreignTablespaceFolders(): Promise<{ name: string; location: string; expected: string }[]> {
    const root = this.options.tablespaces?.root;
    if (root === undefined) return [];
    return withLocalClient(this.connection, async (client) => {
      const { rows } = await client.query<{ name: string; location: string }>(
        "SELECT spcname AS name, pg_catalog.pg_tablespace_location(oid) AS location FROM pg_catalog.pg_tablespace WHERE spcname NOT LIKE 'pg\\_%'",
      );
      return rows.map((row) => ({ ...row, expected: tablespaceLocation(root, row.name) })).filter((row) => row.location !== '' && row.location !== row.expected);
    });
  }

  /** A running replica's WAL receiver and timeline; undefined when this is not a replica. */
  async replicaState(): Promise<{ streaming: boolean; timeline: number } | undefined> {
    if (!(await this.isStandby())) return undefined;
    return this.withHeldSession(async (client) => {
      const { rows } = await client.query<{ streaming: boolean; timeline: number }>(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') AS streaming, (SELECT timeline_id FROM pg_control_checkpoint()) AS timeline",
      );
      const row = rows[0];
      return row;
    });
  }

  async isInRecovery(): Promise<boolean> {
    return this.withHeldSession(async (client) => {
      const { rows } = await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
      return rows[0]?.r === true;
    });
  }

  /**
   * Promotes this replica (CNPG `handlePromotion`): wait until the WAL receiver has stopped, so everything the old
   * primary sent before its clean shutdown is replayed; create the HA slots `haSlots` (while still a replica, as
   * physical slots can be, so the other replicas find theirs the moment they connect); promote and wait for the end
   * of recovery, polled every 10 ms (pg_promote's own wait looks every 100 ms); CHECKPOINT; end the client sessions
   * opened while it was a read-only replica (never one opened once it took writes). Returns the new timeline and the
   * slots created or dropped.
   */
  async promote(walReceiverTimeoutMs: number, haSlots: readonly string[] | undefined): Promise<{ timeline: number; slots: HaSlotChanges | undefined }> {
    const { logger } = this.options;
    return withLocalClient(this.connection, async (client) => {
      const deadline = Date.now() + walReceiverTimeoutMs;
      // 0: no wait (a replica cluster's designated primary forks from a source that keeps running).
      while (walReceiverTimeoutMs > 0) {
        // Not `count(*) = 0`: the startup process keeps restarting a receiver that is not streaming.
        const { rows } = await client.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_wal_receiver WHERE status = 'streaming'");
        if (rows[0]?.n === '0') break;
        if (Date.now() > deadline) {
          logger.warn({ timeoutMs: walReceiverTimeoutMs }, 'the WAL receiver is still running: promoting anyway');
          break;
        }
        await sleep(20);
      }
      const slots = haSlots === undefined ? undefined : await reconcileHaSlotsWith(client, haSlots);
      // The last moment this instance was certainly still a read-only replica, on PostgreSQL's clock (backend_start's)
      // to the microsecond: clock_timestamp() is read before pg_is_in_recovery() in the same row.
      let lastSeenInRecovery = (await client.query<{ t: string }>('SELECT clock_timestamp()::text AS t, pg_promote(false)')).rows[0]?.t;
      const promoteDeadline = Date.now() + promoteTimeoutMs;
      for (;;) {
        const { rows } = await client.query<{ t: string; r: boolean }>('SELECT clock_timestamp()::text AS t, pg_is_in_recovery() AS r');
        if (rows[0]?.r === false) break;
        lastSeenInRecovery = rows[0]?.t ?? lastSeenInRecovery;
        if (Date.now() > promoteDeadline) throw new Error(`PostgreSQL did not finish its promotion within ${promoteTimeoutMs / 1000} s`);
        await sleep(10);
      }
      logger.info('out of recovery: read-write');
      await client.query('CHECKPOINT');
      // CNPG's DropConnections ends every client session after a promotion (one that came in through the read-only
      // service must not go on writing to the primary), but a client that connected once this instance took writes
      // (the first application to find the new primary) lost its session too: only the ones opened while it was
      // still a replica are ended. One opened in the last <= 10 ms poll interval of the promotion is kept.
      await client.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND backend_start <= $1::timestamptz",
        [lastSeenInRecovery],
      );
      const { rows } = await client.query<{ tli: number }>('SELECT timeline_id AS tli FROM pg_control_checkpoint()');
      return { timeline: rows[0]?.tli ?? 0, slots };
    });
  }

  /**
   * A replica told to follow another primary: until its WAL receiver streams (at most `timeoutMs`), wake the startup
   * process every 25 ms (a reload: its SIGHUP handler sets the recovery latch), so a connection attempt that failed
   * because the new primary was not ready yet (still promoting, its slot not there) is retried at once instead of
   * after wal_retrieve_retry_interval. Resolves whether it streams. Under synchronous replication a commit on the new
   * primary waits for this standby: every ms between the new primary's readiness and the next wake-up is failover
   * time (was 100 ms: 50 ms on average; a reload costs PostgreSQL well under a millisecond).
   */
  async followNewPrimary(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    return withLocalClient(this.connection, async (client) => {
      for (;;) {
        const { rows } = await client.query<{ streaming: boolean }>("SELECT EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') AS streaming");
        if (rows[0]?.streaming === true) return true;
        if (Date.now() > deadline) return false;
        await client.query('SELECT pg_reload_conf()');
        await sleep(25);
      }
    });
  }

  /**
   * Rewinds a stopped former primary onto the new primary's timeline (pg_rewind over TLS as streaming_replica).
   * `global/pg_control` is first copied to `pg_control.old` (CNPG's safety net); pg_rewind completes crash recovery
   * itself when the former primary was not shut down cleanly.
   */
  async rewind(sourceConninfo: string, signal?: AbortSignal): Promise<void> {
    // A killed postmaster may linger as a zombie nobody reaped yet: its lock file would make pg_rewind's single-user
    // crash recovery refuse ("lock file already exists"), and its orphaned backends still hold the shared memory.
    const pidFile = await inspectPidFile(this.pgdata);
    if (pidFile.kind === 'stale') await removeStaleLockFiles(this.pgdata, this.options.socketDir, this.options.port);
    await this.waitForPreviousProcesses(15_000);
    await copyFile(join(this.pgdata, 'global', 'pg_control'), join(this.pgdata, 'global', 'pg_control.old'));
    await chmod(join(this.pgdata, 'global', 'pg_control.old'), 0o600);
    this.rewindRunning = true;
    try {
      const result = await runTool(this.binDir, 'pg_rewind', ['-D', this.pgdata, `--source-server=${sourceConninfo}`, '--progress'], {
        logger: this.options.logger,
        env: this.env,
        ...(signal === undefined ? {} : { cancelSignal: signal }),
      });
      if (result.exitCode !== 0) throw new Error(`pg_rewind failed (exit code ${String(result.exitCode)})`);
    } finally {
      this.rewindRunning = false;
    }
  }

  /** pg_rewind runs right now (CNPG's `PgRewindIsRunning`, reported as `isPgRewindRunning`). */
  get isPgRewindRunning(): boolean {
    return this.rewindRunning;
  }

  /** The primary keeps a physical slot for every other instance and drops stale, inactive `_cnpg_` slots. */
  async reconcileHaSlots(wanted: readonly string[]): Promise<HaSlotChanges> {
    return withLocalClient(this.connection, (client) => reconcileHaSlotsWith(client, wanted));
  }

  /** Puts back the files a write replaced (a file that did not exist before is left as written). */
  async restoreConfiguration(write: ConfigurationWrite): Promise<void> {
    for (const [name, bytes] of write.previous) {
      if (bytes !== undefined) await writeFileAtomic(join(this.pgdata, name), bytes, 0o600);
    }
  }

  /**
   * PostgreSQL's verdict on a render's settings, before they are written. pgim writes custom.conf and override.conf
   * only after this check passed, so when PGDATA already holds exactly this render there is nothing new to check
   * (the common restart case, where the check would be most of pgim's own start-up time).
   */
  async checkSettings(rendered: RenderedConfiguration, stagingParent: string, options: { checkedAfterWrite?: boolean } = {}): Promise<string[]> {
    const onDisk = (name: string): Promise<string | undefined> => readFile(join(this.pgdata, name), 'utf8').catch(() => undefined);
    const [custom, override] = await Promise.all([onDisk('custom.conf'), onDisk('override.conf')]);
    if (custom === rendered.customConf && override === rendered.overrideConf) return [];
    // A new primary elsewhere: the running server checks the written files before it reloads them.
    if (options.checkedAfterWrite === true && custom !== undefined && override !== undefined && onlyTopologySettingsChanged(`${custom}\n${override}`, `${rendered.customConf}\n${rendered.overrideConf}`)) return [];
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
    this.held.resume();
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
   * the owner, run the post-init SQL in CNPG's order (postgres, template1, then the application database once
   * created) and set every password, then a fast stop. Runs once: any failure leaves PGDATA empty (initdb failed)
   * or moves the half-made cluster aside (`<pgdata>_<timestamp>`), never a half-initialised PGDATA to start from.
   */
  async bootstrap(cluster: Cluster, credentials: Credentials, rendered: RenderedConfiguration, scripts: PostInitScripts, signal?: AbortSignal): Promise<void> {
    const major = Number(await this.serverMajorVersion());
    const unsupported = Number.isFinite(major) ? unsupportedByServer(cluster.bootstrap.initdb, major) : undefined;
    if (unsupported) throw new ConfigError(`cluster ${cluster.name}`, unsupported.field, unsupported.message);
    try {
      await this.initdb(cluster.bootstrap.initdb.options, signal);
    } catch (err) {
      await emptyDirectory(this.pgdata);
      await this.bootstrapMarker.clear();
      throw err;
    }
    try {
      await this.configureNewCluster(cluster, credentials, rendered, scripts, signal);
    } catch (err) {
      // Moved aside for a post-mortem when PGDATA's parent is writable; emptied otherwise (a mount point).
      const aside = await moveAside(this.pgdata).catch(async () => {
        await emptyDirectory(this.pgdata);
        return undefined;
      });
      await this.bootstrapMarker.clear();
      this.options.logger.error({ pgdata: this.pgdata, movedTo: aside }, `the bootstrap failed: its half-made cluster was ${aside === undefined ? 'deleted' : 'moved aside'}; PGDATA is empty`);
      throw err;
    }
    await this.bootstrapMarker.clear();
  }

  private async configureNewCluster(cluster: Cluster, credentials: Credentials, rendered: RenderedConfiguration, scripts: PostInitScripts, signal?: AbortSignal): Promise<void> {
    const { owner, database } = cluster.bootstrap;
    // Before the first start (archive_mode is on): the first archive must find the object store empty (CNPG).
    await writeFileAtomic(join(this.pgdata, checkEmptyWalArchiveFlag), '', 0o600);
    await this.writeConfiguration(rendered);
    const postmaster = await this.spawn({ listen_addresses: '' });
    try {
      await this.waitAccepting(postmaster, signal);
      await withLocalClient(this.connection, async (client) => {
        await ensureApplicationOwner(client, owner);
        await ensureSystemRoles(client);
        await runPostInitScripts(client, scripts.postgres);
      });
      await withLocalClient(this.connection, (client) => runPostInitScripts(client, scripts.template), 'template1');
      await withLocalClient(this.connection, (client) => ensureApplicationDatabase(client, owner, database));
      await withLocalClient(this.connection, (client) => runPostInitScripts(client, scripts.application), database);
      await withLocalClient(this.connection, (client) => applyCredentials(client, credentials));
    } finally {
      await postmaster.stop({ smartSeconds: 0, fastSeconds: 60 });
    }
  }

  /**
   * A restore's first step: `fill` writes PGDATA (barman-cloud-restore) under the bootstrap marker, so an interrupted
   * restore is never taken for a cluster.
   */
  async fillDataDirectory(fill: () => Promise<void>): Promise<void> {
    await ensureDirectory(this.pgdata, 0o700);
    await this.bootstrapMarker.set();
    await fill();
  }

  /**
   * After a failed restore: PGDATA emptied when it holds no valid control file, else moved aside (never deleted);
   * the marker cleared. Returns where a moved cluster went.
   */
  async discardFailedBootstrap(): Promise<string | undefined> {
    let movedTo: string | undefined;
    const entries = await readdir(this.pgdata).catch(() => [] as string[]);
    if (entries.length > 0) {
      if ((await this.controlData()) === undefined) await emptyDirectory(this.pgdata);
      else movedTo = await moveAside(this.pgdata);
    }
    await this.bootstrapMarker.clear();
    return movedTo;
  }

  /**
   * A restored PGDATA's replay: a socket-only start with `recoverySettings` (restore_command, recovery targets) and
   * recovery.signal, until PostgreSQL promotes at its target onto a new timeline; then, as a bootstrap does, the
   * owner, database, system roles and every password of this cluster; then a fast stop. `progress` is called every
   * few seconds with the replay position while PostgreSQL replays.
   */
  async recoverAndBootstrap(options: {
    cluster: Cluster;
    credentials: Credentials;
    rendered: RenderedConfiguration;
    recoverySettings: Readonly<Record<string, string>>;
    createApplicationDatabase: boolean;
    signal?: AbortSignal | undefined;
    progress?: (replay: { lsn: string | null; time: string | null }) => void;
  }): Promise<{ timeline: number | undefined }> {
    await writeFileAtomic(join(this.pgdata, checkEmptyWalArchiveFlag), '', 0o600);
    await this.writeConfiguration(options.rendered);
    await rm(join(this.pgdata, 'standby.signal'), { force: true });
    await writeFileAtomic(join(this.pgdata, 'recovery.signal'), '', 0o600);
    const postmaster = await this.spawn({ ...(await this.enforcedParameters(options.rendered)), ...options.recoverySettings, listen_addresses: '' });
    try {
      // One session polls every 100 ms (the promotion is seen at once; a new session per poll would cost a backend
      // start each time), opened again if it breaks.
      let poll: pg.Client | undefined;
      try {
        for (;;) {
          if (!postmaster.running) {
            throw new Error('postgres stopped before the recovery finished (its log above says why: e.g. the recovery target is after the end of the archived WAL, or a WAL segment is missing)');
          }
          options.signal?.throwIfAborted();
          poll ??= await connectLocal(this.connection, 'postgres').catch(() => undefined);
          const session = poll;
          const state = await session
            ?.query<{ recovery: boolean; lsn: string | null; time: string | null }>('SELECT pg_is_in_recovery() AS recovery, pg_last_wal_replay_lsn()::text AS lsn, pg_last_xact_replay_timestamp()::text AS time')
            .then((result) => result.rows[0])
            .catch(async () => {
              poll = undefined;
              await session.end().catch(() => undefined);
              return undefined;
            });
          if (state?.recovery === false) break;
          if (state !== undefined) options.progress?.({ lsn: state.lsn, time: state.time });
          await sleep(state === undefined ? 200 : 100);
        }
      } finally {
        await poll?.end().catch(() => undefined);
      }
      await withLocalClient(this.connection, async (client) => {
        if (options.createApplicationDatabase) await ensureApplicationDatabase(client, options.cluster.bootstrap.owner, options.cluster.bootstrap.database);
        await ensureSystemRoles(client);
        await applyCredentials(client, options.credentials);
        // The first segment of the new timeline ends now: archived (and a backup possible) right after the start.
        await client.query('CHECKPOINT');
      });
    } finally {
      await postmaster.stop({ smartSeconds: 0, fastSeconds: 60 });
    }
    await this.bootstrapMarker.clear();
    return { timeline: (await this.controlData())?.timeline };
  }

  /**
   * A standby must run with max_connections and its kin at least as high as the primary that wrote the WAL
   * (PostgreSQL stops the replay otherwise): the higher of the rendered value and the control file's (CNPG's
   * enforced parameters).
   */
  private async enforcedParameters(rendered: RenderedConfiguration): Promise<Record<string, string>> {
    const raw = (await this.controlData())?.raw ?? '';
    const names = ['max_connections', 'max_worker_processes', 'max_wal_senders', 'max_prepared_transactions', 'max_locks_per_transaction'];
    const labels: Record<string, string> = { max_prepared_transactions: 'max_prepared_xacts', max_locks_per_transaction: 'max_locks_per_xact' };
    const out: Record<string, string> = {};
    for (const name of names) {
      const line = raw.split('\n').find((l) => l.startsWith(`${labels[name] ?? name} setting:`));
      const fromControl = Number(line?.split(':')[1]?.trim());
      const configured = Number(/^(\w+)\s*=\s*'?(\d+)/m.exec(rendered.customConf.split('\n').find((l) => l.startsWith(`${name} `)) ?? '')?.[2]);
      if (Number.isFinite(fromControl) && !(configured >= fromControl)) out[name] = String(fromControl);
    }
    return out;
  }

  /**
   * Everything that must hold before a postmaster may start: PGDATA 0700; no live postmaster of this PGDATA left
   * from before (stopped if found), no stale lock file that names a reused PID; no process of an earlier
   * postmaster still in PGDATA; room for one more WAL segment (WalSpaceError otherwise).
   */
  async prepareStart(): Promise<void> {
    const { logger } = this.options;
    await enforceDataDirectoryMode(this.pgdata);
    const pidFile = await inspectPidFile(this.pgdata);
    if (pidFile.kind === 'live') {
      const parent = (await readProcStat(pidFile.pid))?.ppid;
      if (parent !== 1 && parent !== process.pid) {
        throw new Error(`PGDATA ${this.pgdata} is in use by postmaster ${pidFile.pid}, supervised by process ${String(parent)}; refusing to start a second one`);
      }
      logger.warn({ pid: pidFile.pid }, 'a postmaster of this PGDATA is running without pgim: stopping it before starting our own');
      await stopForeignPostmaster(pidFile.pid);
    } else if (pidFile.kind === 'stale') {
      logger.info({ pid: pidFile.pid, reason: pidFile.reason }, 'removing a stale postmaster.pid');
      await removeStaleLockFiles(this.pgdata, this.options.socketDir, this.options.port);
    }
    await this.waitForPreviousProcesses(15_000);
    if (this.options.listenAddresses !== undefined) await checkPortFree(this.options.listenAddresses, this.options.port);
    this.walSegmentBytes ??= (await this.controlData())?.walSegmentBytes ?? 16 * 1024 * 1024;
    await checkWalSpace(this.pgdata, this.walSegmentBytes);
  }

  async checkpoint(timeoutMs: number): Promise<void> {
    await withLocalClient(this.connection, async (client) => {
      await client.query(`SET statement_timeout = ${Math.max(1, Math.floor(timeoutMs))}`);
      await client.query('CHECKPOINT');
    });
  }

  status(clusterName: string): Promise<PostgresReportedStatus> {
    // Not on the held session: with it, CNPG's operator saw an empty replicationInfo on a just-promoted primary
    // (test/integration/cnpg-operator-e2e.test.ts, twice in two runs); a fresh session per (cached, coalesced) query.
    return withLocalClient(this.connection, (client) => queryStatus(client, clusterName));
  }


}
