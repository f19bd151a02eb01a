import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { Logger } from 'pino';
import { errorMessage } from '../errors/index.js';
import type { InstanceState } from '../instance/state.js';
import type { ClusterMetricFacts } from '../cluster/observability.js';
import { connectMonitor } from '../postgres/sql.js';
import type { LocalConnection } from '../postgres/sql.js';
import { renderFamily } from './exposition.js';
import { globMatch, isPattern, parseVersionRange, postgresSemver, type Version } from './matching.js';
import type { QueryDefinition } from './queries-parser.js';
import { FamilySet, runQuery } from './query-runner.js';
import { securityWarningKinds } from '../render/security-warnings.js';

/**
 * One collection pass: CNPG's built-in `cnpg_collector_*` families (prom-client objects in `registry`) and the query
 * families (rendered to text, because their counters are absolute values). Nothing here runs during a scrape.
 */

export interface CollectorOptions {
  readonly state: InstanceState;
  readonly connection: LocalConnection;
  readonly pgdata: string;
  /** Where queries without `target_databases` run: the application database (CNPG's default), or `postgres`. */
  readonly defaultDatabase: string;
  /** The Cluster's fields behind the cluster-level gauges, read at every scrape (the Cluster is watched). */
  readonly clusterFacts?: () => ClusterMetricFacts;
  readonly logger: Logger;
}

const unknownCluster: ClusterMetricFacts = {
  replicaMode: false,
  minSyncReplicas: 0,
  maxSyncReplicas: 0,
  phase: undefined,
  currentPrimary: undefined,
  nodesUsed: -1,
  firstRecoverabilityPoint: undefined,
  lastSuccessfulBackup: undefined,
  lastFailedBackup: undefined,
};

/** CNPG's `setTimestampMetric`: an RFC 3339 time as Unix seconds, 0 when there is none (or it does not parse). */
function unixSeconds(time: string | undefined): number {
  if (time === undefined || time === '') return 0;
  const ms = Date.parse(time);
  return Number.isNaN(ms) ? 0 : ms / 1000;
}

interface ServerFacts {
  version_num: string;
  in_recovery: boolean;
  sync_names: string;
  wal_segment_size: string;
  min_wal_size: string;
  max_wal_size: string;
  wal_keep_size: string;
  max_slot_wal_keep_size: string;
}

const factsQuery = `
SELECT pg_catalog.current_setting('server_version_num') AS version_num, pg_catalog.pg_is_in_recovery() AS in_recovery,
       pg_catalog.current_setting('synchronous_standby_names') AS sync_names,
       pg_catalog.pg_size_bytes(pg_catalog.current_setting('wal_segment_size'))::text AS wal_segment_size,
       pg_catalog.pg_size_bytes(pg_catalog.current_setting('min_wal_size'))::text AS min_wal_size,
       pg_catalog.pg_size_bytes(pg_catalog.current_setting('max_wal_size'))::text AS max_wal_size,
       pg_catalog.pg_size_bytes(pg_catalog.current_setting('wal_keep_size'))::text AS wal_keep_size,
       pg_catalog.pg_size_bytes(pg_catalog.current_setting('max_slot_wal_keep_size'))::text AS max_slot_wal_keep_size`;

const walStatsColumns = ['wal_records', 'wal_fpi', 'wal_bytes', 'wal_buffers_full', 'wal_write', 'wal_sync', 'wal_write_time', 'wal_sync_time'] as const;
type WalStat = (typeof walStatsColumns)[number];

const walStatsHelp: Readonly<Record<WalStat, string>> = {
  wal_records: 'Total number of WAL records generated. Only available on PG 14+',
  wal_fpi: 'Total number of WAL full page images generated. Only available on PG 14+',
  wal_bytes: 'Total amount of WAL generated in bytes. Only available on PG 14+',
  wal_buffers_full: 'Number of times WAL data was written to disk because WAL buffers became full. Only available on PG 14+',
  wal_write: 'Number of times WAL buffers were written out to disk via XLogWrite request. Only available on PG 14+',
  wal_sync:
    'Number of times WAL files were synced to disk via issue_xlog_fsync request (if fsync is on and wal_sync_method is either fdatasync, fsync or fsync_writethrough, otherwise zero). Only available on PG 14+',
  wal_write_time:
    'Total amount of time spent writing WAL buffers to disk via XLogWrite request, in milliseconds (if track_wal_io_timing is enabled, otherwise zero). This includes the sync time when wal_sync_method is either open_datasync or open_sync. Only available on PG 14+',
  wal_sync_time:
    'Total amount of time spent syncing WAL files to disk via issue_xlog_fsync request, in milliseconds (if track_wal_io_timing is enabled, fsync is on, and wal_sync_method is either fdatasync, fsync or fsync_writethrough, otherwise zero). Only available on PG 14+',
};

const syncStandbyPattern = /(ANY|FIRST) ([0-9]+) \(.*\)/;
const walFilePattern = /^[0-9A-F]{24}/;

/** nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds sampling period (nodejs_eventloop_lag_seconds is measured at each scrape). */
const eventLoopSampleMs = 10_000;

export class Collector {
  readonly registry = new Registry();
  /**
   * The per-query, per-database families (runs, errors, duration). They change only during a collection, so they
   * are rendered with it into the cached text: a cached scrape then costs the same with 1 or 1,000 databases (bench
   * S1) instead of re-rendering three series per query and database every time.
   */
  private readonly queryRegistry = new Registry();
  private pingOk = false;
  private readonly collections: Counter;
  private readonly collectionErrors: Counter;
  private readonly lastError: Gauge;
  private readonly duration: Gauge;
  private readonly version: Gauge;
  private readonly pgWal: Gauge;
  private readonly archiveStatus: Gauge;
  private readonly syncReplicas: Gauge;
  private readonly standbySync: Gauge;
  private readonly walStats: Map<WalStat, Gauge>;
  private readonly queryErrors: Counter;
  private readonly queryRuns: Counter;
  private readonly queryDuration: Gauge;
  private readonly configErrors: Gauge;
  private readonly lastCollection: Gauge;

  constructor(private readonly options: CollectorOptions) {
    const registers = [this.registry];
    const { state } = options;
    // The event-loop delay histogram samples on a libuv timer at this resolution: prom-client's 10 ms default woke
    // pgim 100 times a second, most of its idle CPU; once a second was still 60 of an idle pgim's ~75 timer wake-ups
    // a minute (3 ms of CPU). Every 10 s, a stall long enough to matter still shows, and each scrape also measures
    // the loop's lag itself (nodejs_eventloop_lag_seconds).
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: eventLoopSampleMs });
    // prom-client's deprecated duplicates of nodejs_active_{handles,requests,resources}: gauges named like counters,
    // which Prometheus' linter rejects; the unsuffixed families carry the same numbers.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      this.registry.removeSingleMetric(name);
    }
    // CNPG's names, labels and help texts (webserver/metricserver/pg_collector.go).
    this.collections = new Counter({ name: 'cnpg_collector_collections_total', help: 'Total number of times PostgreSQL was accessed for metrics.', registers });
    this.collectionErrors = new Counter({
      name: 'cnpg_collector_collection_errors_total',
      help: 'Total errors occurred accessing PostgreSQL for metrics.',
      labelNames: ['collector'],
      registers,
    });
    this.lastError = new Gauge({ name: 'cnpg_collector_last_collection_error', help: '1 if the last collection ended with error, 0 otherwise.', registers });
    const pingOk = (): boolean => this.pingOk;
    new Gauge({
      name: 'cnpg_collector_up',
      help: '1 if PostgreSQL is up, 0 otherwise.',
      labelNames: ['cluster'],
      registers,
      // Read at scrape time: a postmaster that just died reads 0 at once, not after the next collection.
      collect() {
        this.set({ cluster: state.clusterName }, state.accepting && pingOk() ? 1 : 0);
      },
    });
    this.duration = new Gauge({
      name: 'cnpg_collector_collection_duration_seconds',
      help: 'Collection time duration in seconds',
      labelNames: ['collector'],
      registers,
    });
    this.syncReplicas = new Gauge({
      name: 'cnpg_collector_sync_replicas',
      help: 'Number of requested synchronous replicas (synchronous_standby_names)',
      labelNames: ['value'],
      registers,
    });
    this.standbySync = new Gauge({
      name: 'pgim_replication_sync_priority',
      help: "Each standby streaming from this primary: its sync_priority in synchronous_standby_names (0: asynchronous), labelled with its sync_state (sync, quorum, potential, async), as /pg/status' syncState and syncPriority",
      labelNames: ['application_name', 'sync_state'],
      registers,
    });
    const cluster = (): ClusterMetricFacts => options.clusterFacts?.() ?? unknownCluster;
    // The cluster-level gauges of CNPG's `reconcileMetrics`, `collectNodesUsed` and backup timestamps, read from the
    // watched Cluster at scrape time. The backup ones read 0 until backups write those status fields.
    new Gauge({
      name: 'cnpg_collector_replica_mode',
      help: '1 if the cluster is in replica mode, 0 otherwise',
      registers,
      collect() {
        this.set(cluster().replicaMode ? 1 : 0);
      },
    });
    new Gauge({
      name: 'cnpg_collector_manual_switchover_required',
      help: '1 if a manual switchover is required, 0 otherwise',
      registers,
      collect() {
        const facts = cluster();
        // CNPG sets it only on the current primary, from the phase "Waiting for user action" (supervised updates).
        if (facts.currentPrimary === undefined || facts.currentPrimary === state.podName) {
          this.set(facts.phase === 'Waiting for user action' ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: 'cnpg_collector_nodes_used',
      help:
        "NodesUsed represents the count of distinct nodes accommodating the instances. A value of '-1' suggests that the metric is not available. A value of '1' suggests that all instances are hosted on a single node, implying the absence of High Availability (HA). Ideally this value should match the number of instances in the cluster.",
      registers,
      collect() {
        this.set(cluster().nodesUsed);
      },
    });
    const timestampGauge = (name: string, help: string, read: (facts: ClusterMetricFacts) => string | undefined): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(unixSeconds(read(cluster())));
        },
      });
    };
    timestampGauge(
      'cnpg_collector_first_recoverability_point',
      'The first point of recoverability for the cluster as a unix timestamp (Deprecated)',
      (f) => f.firstRecoverabilityPoint,
    );
    timestampGauge('cnpg_collector_last_available_backup_timestamp', 'The last available backup as a unix timestamp (Deprecated)', (f) => f.lastSuccessfulBackup);
    timestampGauge('cnpg_collector_last_failed_backup_timestamp', 'The last failed backup as a unix timestamp (Deprecated)', (f) => f.lastFailedBackup);
    this.archiveStatus = new Gauge({
      name: 'cnpg_collector_pg_wal_archive_status',
      help: `Number of WAL segments in the '${join(options.pgdata, 'pg_wal', 'archive_status')}' directory (ready, done)`,
      labelNames: ['value'],
      registers,
    });
    this.pgWal = new Gauge({
      name: 'cnpg_collector_pg_wal',
      help: `Total size in bytes of WAL segments in the '${join(options.pgdata, 'pg_wal')}' directory computed as (wal_segment_size * count)`,
      labelNames: ['value'],
      registers,
    });
    this.version = new Gauge({ name: 'cnpg_collector_postgres_version', help: 'Postgres version', labelNames: ['full', 'cluster'], registers });
    new Gauge({
      name: 'cnpg_collector_fencing_on',
      help: '1 if the instance is fenced, 0 otherwise',
      registers,
      collect() {
        this.set(state.phase === 'fenced' ? 1 : 0);
      },
    });
    this.walStats = new Map(
      walStatsColumns.map((column) => [
        column,
        new Gauge({ name: `cnpg_collector_${column}`, help: walStatsHelp[column], labelNames: ['stats_reset'], registers }),
      ]),
    );
    let reportedRestarts = 0;
    new Counter({
      name: 'pgim_postmaster_restarts_total',
      help: 'Unexpected postmaster exits followed by an in-process restart.',
      registers,
      collect() {
        this.inc(state.restartCount - reportedRestarts);
        reportedRestarts = state.restartCount;
      },
    });
    // Expiry of the TLS material in use, so an alert can fire weeks ahead (pgim also logs a warning 30 days ahead).
    new Gauge({
      name: 'pgim_certificate_expiry_timestamp_seconds',
      help: 'When a certificate pgim uses expires (Unix time), by the Secret it comes from.',
      labelNames: ['secret'],
      registers,
      collect() {
        this.reset();
        for (const certificate of state.certificates) this.set({ secret: certificate.secret }, certificate.notAfter.getTime() / 1000);
      },
    });
    // Settings that weaken transport or authentication security (TLS 1.2 allowed, trust rules, match-all ident maps):
    // every kind present, 0 when unused, so an alert can fire on > 0.
    new Gauge({
      name: 'pgim_security_warnings',
      help: 'Accepted settings that weaken transport or authentication security, by kind (see /pg/status securityWarnings).',
      labelNames: ['kind'],
      registers,
      collect() {
        for (const kind of securityWarningKinds) this.set({ kind }, state.securityWarnings.filter((w) => w.kind === kind).length);
      },
    });
    // Beyond CNPG (its #4962, #2552): per-query outcome, so a failing query is visible instead of a family vanishing.
    this.queryErrors = new Counter({
      name: 'pgim_metrics_query_errors_total',
      help: 'Runs of a monitoring query that failed (error, timeout, wrong result shape), by query and database.',
      labelNames: ['query', 'database'],
      registers: [this.queryRegistry],
    });
    this.queryRuns = new Counter({
      name: 'pgim_metrics_query_runs_total',
      help: 'Runs of a monitoring query against PostgreSQL, by query and database.',
      labelNames: ['query', 'database'],
      registers: [this.queryRegistry],
    });
    this.queryDuration = new Gauge({
      name: 'pgim_metrics_query_duration_seconds',
      help: 'Wall time of the latest run of a monitoring query, by query and database.',
      labelNames: ['query', 'database'],
      registers: [this.queryRegistry],
    });
    this.configErrors = new Gauge({
      name: 'pgim_metrics_config_errors',
      help: 'Queries or whole sources (ConfigMap/Secret keys) refused at load; 0 when every source loaded.',
      labelNames: ['source'],
      registers,
    });
    this.lastCollection = new Gauge({
      name: 'pgim_metrics_last_collection_timestamp_seconds',
      help: 'When the cached query results were collected (scrapes read this cache), seconds since the Unix epoch.',
      registers,
    });
  }

  /** Records load problems of the current query set (reset at every load). */
  setConfigErrors(errors: readonly { source: string }[], sources: readonly string[]): void {
    this.configErrors.reset();
    for (const source of sources) this.configErrors.set({ source }, 0);
    for (const e of errors) this.configErrors.inc({ source: e.source });
  }

  /** Whether a family name is already one of the built-in ones (a query may not shadow it). */
  isBuiltin(name: string): boolean {
    return this.registry.getSingleMetric(name) !== undefined || this.queryRegistry.getSingleMetric(name) !== undefined;
  }

  /**
   * Collects everything and returns the rendered query families. Never throws: every failure becomes an error
   * series and a log line, and the families that did work are kept.
   */
  async collect(queries: readonly QueryDefinition[], queryTimeoutMs: number): Promise<string> {
    const { state, logger } = this.options;
    this.collections.inc();
    const started = performance.now();
    const clients = new Map<string, Promise<pg.Client>>();
    // One session on the default database for the whole collection, and at most one on another database at a time:
    // every database's session used to stay open until the collection ended, so 100 databases matched by a
    // `target_databases: ['*']` query exhausted max_connections 100 (bench S1) and the others' queries failed.
    let other: string | undefined;
    const client = async (database: string): Promise<pg.Client> => {
      if (database !== this.options.defaultDatabase && other !== database) {
        const previous = other === undefined ? undefined : clients.get(other);
        if (other !== undefined) clients.delete(other);
        await previous?.then((x) => x.end()).catch(() => undefined);
        other = database;
      }
      let c = clients.get(database);
      if (!c) {
        c = connectMonitor(this.options.connection, database, 5000);
        c.catch(() => undefined);
        clients.set(database, c);
      }
      return c;
    };
    let failed = false;
    const fail = (collector: string, err: unknown): void => {
      failed = true;
      this.collectionErrors.inc({ collector });
      logger.warn({ collector, error: errorMessage(err) }, 'metrics collection error');
    };
    try {
      let facts: ServerFacts;
      try {
        const main = await client(this.options.defaultDatabase);
        facts = (await main.query<ServerFacts>(factsQuery)).rows[0] as ServerFacts;
        this.pingOk = true;
      } catch (err) {
        this.pingOk = false;
        this.lastError.set(1);
        this.duration.set({ collector: 'Collect.up' }, (performance.now() - started) / 1000);
        logger.warn({ error: errorMessage(err) }, 'unable to collect metrics');
        return '';
      }
      this.duration.set({ collector: 'Collect.up' }, (performance.now() - started) / 1000);
      const versionNum = Number(facts.version_num);
      const semver = postgresSemver(versionNum);
      const queriesStarted = performance.now();
      const text = await this.collectQueries(queries, semver, !facts.in_recovery, client, queryTimeoutMs).catch((err: unknown) => {
        fail('Collect.cnpg', err);
        return { text: '', failed: true };
      });
      if (text.failed) failed = true;
      this.duration.set({ collector: 'Collect.cnpg' }, (performance.now() - queriesStarted) / 1000);
      if (!facts.in_recovery) this.collectSyncReplicas(facts.sync_names, fail);
      this.standbySync.reset();
      if (!facts.in_recovery) {
        const { rows } = await (await client(this.options.defaultDatabase)).query<{ name: string; state: string; priority: number }>(
          "SELECT COALESCE(application_name, '') AS name, COALESCE(sync_state, '') AS state, COALESCE(sync_priority, 0) AS priority FROM pg_catalog.pg_stat_replication",
        ).catch((err: unknown) => {
          fail('Collect.StandbySync', err);
          return { rows: [] };
        });
        for (const row of rows) this.standbySync.set({ application_name: row.name, sync_state: row.state }, row.priority);
      }
      await this.collectArchiveStatus().catch((err: unknown) => {
        fail('Collect.PgWALArchiveStats', err);
      });
      await this.collectWalDirectory(facts).catch((err: unknown) => {
        fail('Collect.PGWalSettings', err);
      });
      this.version.reset();
      const full = `${semver[0]}.${semver[2]}`;
      this.version.set({ full, cluster: state.clusterName }, Number(full));
      if (semver[0] >= 14) {
        await this.collectWalStats(await client(this.options.defaultDatabase), semver).catch((err: unknown) => {
          fail('Collect.PGWALStat', err);
        });
      }
      this.lastError.set(failed ? 1 : 0);
      this.lastCollection.set(Date.now() / 1000);
      return text.text + (await this.queryRegistry.metrics());
    } finally {
      await Promise.all([...clients.values()].map((c) => c.then((x) => x.end()).catch(() => undefined)));
    }
  }

  private async collectQueries(
    queries: readonly QueryDefinition[],
    version: Version,
    isPrimary: boolean,
    client: (database: string) => Promise<pg.Client>,
    timeoutMs: number,
  ): Promise<{ text: string; failed: boolean }> {
    const set = new FamilySet();
    let failed = false;
    let accessible: string[] | undefined;
    this.queryDuration.reset();
    // Every run of this collection, grouped by database (databases in the order they first come up, each one's
    // queries in their order): each database is visited once, on one session, however many queries target it.
    // Visited query by query, three `target_databases: ['*']` queries (CNPG's pg_extensions, the injected
    // large-object one, a user's) opened three sessions per database (bench S1).
    const runs = new Map<string, QueryDefinition[]>();
    for (const def of queries) {
      if (def.primaryOnly && !isPrimary) continue;
      if (def.runOnServer !== undefined && !(parseVersionRange(def.runOnServer)?.(version) ?? false)) continue;
      const targets = def.targetDatabases.length === 0 ? [this.options.defaultDatabase] : def.targetDatabases;
      if (accessible === undefined && targets.some(isPattern)) {
        const main = await client(this.options.defaultDatabase);
        accessible = (
          await main.query<{ datname: string }>(
            `SELECT datname FROM pg_catalog.pg_database
              WHERE datallowconn AND NOT datistemplate AND pg_catalog.has_database_privilege(datname, 'CONNECT') ORDER BY 1`,
          )
        ).rows.map((r) => r.datname);
      }
      const databases = new Set<string>();
      for (const target of targets) {
        if (!isPattern(target)) databases.add(target);
        else for (const db of accessible ?? []) if (globMatch(target, db)) databases.add(db);
      }
      for (const database of databases) {
        const list = runs.get(database) ?? [];
        list.push(def);
        runs.set(database, list);
      }
    }
    for (const [database, defs] of runs) {
      for (const def of defs) {
        const labels = { query: def.name, database };
        const started = performance.now();
        try {
          this.queryRuns.inc(labels);
          // Present at 0 from the first run, so an alert on its rate sees the first failure.
          this.queryErrors.inc(labels, 0);
          await runQuery(await client(database), def, set, { timeoutMs });
        } catch (err) {
          failed = true;
          this.queryErrors.inc(labels);
          this.options.logger.warn({ query: def.name, database, error: errorMessage(err) }, 'monitoring query failed');
        } finally {
          this.queryDuration.set(labels, (performance.now() - started) / 1000);
        }
      }
    }
    const out: string[] = [];
    for (const family of set.families.values()) {
      if (this.isBuiltin(family.name)) {
        failed = true;
        this.options.logger.warn({ family: family.name }, 'a monitoring query produces a built-in family name; skipped');
        continue;
      }
      out.push(renderFamily(family));
    }
    return { text: out.join(''), failed };
  }

  private collectSyncReplicas(names: string, fail: (collector: string, err: unknown) => void): void {
    // CNPG's GetExpectedSyncReplicasNumber: spec.postgresql.synchronous.number, or with the legacy fields the number
    // computed from the streaming standbys (the one pgim rendered, so the observed one).
    const facts = this.options.clusterFacts?.() ?? unknownCluster;
    this.syncReplicas.set({ value: 'min' }, facts.minSyncReplicas);
    this.syncReplicas.set({ value: 'max' }, facts.maxSyncReplicas);
    const match = names === '' ? undefined : syncStandbyPattern.exec(names);
    const observed = names === '' ? 0 : match ? Number(match[2]) : -1;
    this.syncReplicas.set({ value: 'expected' }, facts.synchronousNumber ?? (facts.maxSyncReplicas > 0 ? Math.max(observed, 0) : 0));
    this.syncReplicas.set({ value: 'observed' }, observed);
    if (observed === -1) fail('Collect.SynchronousStandbys', new Error(`not matching synchronous standby names regex: ${names}`));
  }

  private async collectArchiveStatus(): Promise<void> {
    const files = await readdir(join(this.options.pgdata, 'pg_wal', 'archive_status'));
    this.archiveStatus.set({ value: 'ready' }, files.filter((f) => f.endsWith('.ready')).length);
    this.archiveStatus.set({ value: 'done' }, files.filter((f) => f.endsWith('.done')).length);
  }

  private async collectWalDirectory(facts: ServerFacts): Promise<void> {
    const count = (await readdir(join(this.options.pgdata, 'pg_wal'))).filter((f) => walFilePattern.test(f)).length;
    const segment = Number(facts.wal_segment_size);
    const slotsMax = Number(facts.max_slot_wal_keep_size);
    this.pgWal.set({ value: 'count' }, count);
    this.pgWal.set({ value: 'size' }, count * segment);
    this.pgWal.set({ value: 'min' }, Number(facts.min_wal_size) / segment);
    this.pgWal.set({ value: 'max' }, Number(facts.max_wal_size) / segment);
    this.pgWal.set({ value: 'keep' }, Number(facts.wal_keep_size) / segment);
    this.pgWal.set({ value: 'slots_max' }, slotsMax < 0 ? NaN : slotsMax / segment);
    // No separate WAL volume in pgim's layouts yet: unknown, as CNPG reports without one.
    this.pgWal.set({ value: 'volume_size' }, NaN);
    this.pgWal.set({ value: 'volume_max' }, NaN);
  }

  private async collectWalStats(client: pg.Client, version: Version): Promise<void> {
    // PostgreSQL 18 moved the write/sync counters to pg_stat_io.
    const columns = version[0] >= 18 ? walStatsColumns.slice(0, 4) : walStatsColumns;
    const { rows } = await client.query<Record<string, string>>(
      `SELECT ${columns.map((c) => `${c}::text AS ${c}`).join(', ')},
              COALESCE(pg_catalog.to_char(stats_reset AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), '') AS stats_reset
         FROM pg_catalog.pg_stat_wal`,
    );
    const row = rows[0];
    if (!row) return;
    const statsReset = (row.stats_reset ?? '').replace(/\.?0+Z$/, 'Z');
    for (const column of columns) {
      const gauge = this.walStats.get(column);
      gauge?.reset();
      gauge?.set({ stats_reset: statsReset }, Number(row[column]));
    }
  }
}
