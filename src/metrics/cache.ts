import type { Logger } from 'pino';
import type { InstanceState } from '../instance/state.js';
import { coalesced } from '../async/coalesce.js';
import type { MonitoringSpec } from '../cluster/observability.js';
import type { Collector } from './collector.js';
import type { LoadedQueries } from './custom-queries.js';

/**
 * Runs the SQL on a schedule and keeps the result; a scrape only reads it (beyond CNPG, its #4962: there every scrape
 * re-runs every query, so N scrapers cost N collections). The schedule runs only while someone scrapes: after
 * `idleTtls` TTLs without a scrape it stops (an unscraped pgim runs no monitoring SQL), and the next scrape collects
 * at once and starts it again. With `metricsQueriesTTL: 0` there is no schedule and a scrape collects, coalesced:
 * concurrent scrapes share one collection.
 */
export interface MetricsCacheOptions {
  readonly collector: Collector;
  readonly state: InstanceState;
  readonly monitoring: () => MonitoringSpec;
  readonly loadQueries: (monitoring: MonitoringSpec) => Promise<LoadedQueries>;
  readonly logger: Logger;
}

/** Per-query statement and lock timeout: half the TTL within [1 s, 10 s], so a collection fits in its period. */
export function queryTimeoutMs(ttlSeconds: number): number {
  if (ttlSeconds <= 0) return 5000;
  return Math.min(10_000, Math.max(1000, Math.floor(ttlSeconds * 500)));
}

/** How soon to look again while PostgreSQL does not accept connections yet. */
const notReadyRetryMs = 1000;

/** TTLs without a scrape after which the schedule stops (Prometheus scrapes at least every TTL when it matters). */
export const idleTtls = 3;

export class MetricsCache {
  /** The last collected query families, encoded once: a scrape sends these bytes as they are. */
  private bytes = Buffer.alloc(0);
  private queries: LoadedQueries = { queries: [], errors: [] };
  private signature = '';
  private timer: NodeJS.Timeout | undefined;
  private scheduled = false;
  private stopped = false;
  private lastScrapeMs: number;
  private collectedAtMs = -Infinity;
  private readonly collectOnce: () => Promise<void>;

  constructor(
    private readonly options: MetricsCacheOptions,
    private readonly now: () => number = Date.now,
  ) {
    this.collectOnce = coalesced(() => this.collect(), 0);
    // Start-up counts as a scrape: the cache is primed and kept for a first scraper that comes soon.
    this.lastScrapeMs = now();
  }

  private get ttlSeconds(): number {
    return this.options.monitoring().queriesTtlSeconds;
  }

  /** Loads the queries and starts the schedule. */
  async start(): Promise<void> {
    await this.reload();
    this.schedule(0);
  }

  /**
   * Re-reads the query sources (after a config change); when the query set really changed, collects soon so new
   * families appear without waiting a whole TTL. An unchanged set costs no SQL.
   */
  async reload(): Promise<void> {
    const monitoring = this.options.monitoring();
    const loaded = await this.options.loadQueries(monitoring);
    const signature = JSON.stringify(loaded.queries, (_key, value: unknown) => (value instanceof Map ? [...value] : value));
    this.options.collector.setConfigErrors(loaded.errors, monitoring.customQueries.map((s) => `${s.kind} ${s.name}/${s.key}`));
    for (const e of loaded.errors) this.options.logger.warn({ source: e.source, error: e.message }, 'monitoring queries refused');
    this.queries = loaded;
    if (signature !== this.signature) {
      const first = this.signature === '';
      this.signature = signature;
      if (!first) this.schedule(0);
    }
  }

  /** What a scrape serves: the last collected query families (collecting first when the cache is off or stale). */
  async snapshot(): Promise<string> {
    return (await this.snapshotBytes()).toString();
  }

  /** `snapshot` as the bytes the server sends (no re-encoding of a large exposition at every scrape). */
  async snapshotBytes(): Promise<Buffer> {
    this.lastScrapeMs = this.now();
    const ttlMs = this.ttlSeconds * 1000;
    if (ttlMs <= 0) {
      await this.collectOnce();
    } else if (!this.scheduled && !this.stopped) {
      // The schedule had stopped for want of scrapers: collect now if the result is stale, and run it again.
      if (this.now() - this.collectedAtMs >= ttlMs) await this.collectOnce();
      this.schedule(Math.max(0, this.collectedAtMs + ttlMs - this.now()));
    }
    return this.bytes;
  }

  stop(): void {
    this.stopped = true;
    this.scheduled = false;
    clearTimeout(this.timer);
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.scheduled = false;
    if (this.stopped || this.ttlSeconds <= 0) return;
    this.scheduled = true;
    this.timer = setTimeout(() => {
      const started = this.now();
      if (started - this.lastScrapeMs > idleTtls * this.ttlSeconds * 1000) {
        this.scheduled = false;
        return;
      }
      void this.collectOnce().then(() => {
        // Fixed rate: the next run starts one TTL after this one started, so each query runs once per TTL.
        const next = this.options.state.accepting ? started + this.ttlSeconds * 1000 - this.now() : notReadyRetryMs;
        this.schedule(Math.max(0, next));
      });
    }, delayMs);
    this.timer.unref();
  }

  private async collect(): Promise<void> {
    const { state } = this.options;
    // Mid-restart or stopping: a connection attempt would only fail (or delay a smart shutdown); keep the last values.
    if (!state.accepting || state.phase === 'stopping' || state.phase === 'restarting') return;
    this.bytes = Buffer.from(await this.options.collector.collect(this.queries.queries, queryTimeoutMs(this.ttlSeconds)));
    this.collectedAtMs = this.now();
  }
}
