/** What the cost curves (S1-S5) share: scrapes, the SQL pgim's exporter runs (counted from PostgreSQL's log), RSS. */
import { open, stat } from 'node:fs/promises';
import * as http from 'node:http';
import { footprint } from '../footprint.js';
import { timedGet } from '../http-load.js';
import { pollUntil, queryOnce, type Login } from '../pg.js';
import type { PgimSystem } from '../systems/pgim.js';
import { median } from '../stats.js';
import { pointMetric } from '../curves.js';
import type { BenchContext, Recorder, RunInfo, Unit } from './types.js';

export interface Scrape {
  /** Request sent -> last byte received. */
  ms: number;
  /** Request sent -> response headers received: the server's own work (pgim renders before it answers). */
  firstByteMs: number;
  text: string;
}

/** One GET of a metrics endpoint on a new connection. */
export function scrape(url: string, timeoutMs = 900_000): Promise<Scrape> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      const firstByteMs = performance.now() - t0;
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('error', reject);
      res.once('end', () => {
        if (res.statusCode !== 200) reject(new Error(`GET ${url}: ${res.statusCode ?? '?'}`));
        else resolve({ ms: performance.now() - t0, firstByteMs, text: Buffer.concat(chunks).toString() });
      });
    });
    req.once('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.once('error', reject);
  });
}

/** The value of the first sample of `family` whose labels contain every `label="value"` given (NaN when none). */
export function sampleValue(text: string, family: string, labels: Readonly<Record<string, string>> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${family}{`) && !line.startsWith(`${family} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return NaN;
}

export function collections(text: string): number {
  return sampleValue(text, 'cnpg_collector_collections_total');
}

export function seriesCount(text: string): number {
  let count = 0;
  for (const line of text.split('\n')) if (line !== '' && !line.startsWith('#')) count += 1;
  return count;
}

/** The samples of a curve point go under `quantity [axis=x]` (curves.ts groups them back). */
export function pointRecorder(recorder: Recorder, system: string, axis: string, x: number, run: RunInfo) {
  return (quantity: string, value: number, unit: Unit, detail = false): void => {
    recorder.add(system, pointMetric(quantity, axis, x), run, value, unit, detail ? { detail: true } : undefined);
  };
}

/** The warm-up (when enabled) and `count` measured repetitions at one point of a curve. */
export function repetitions(context: BenchContext, count = context.runs): RunInfo[] {
  const runs: RunInfo[] = context.warmup ? [{ index: 0, warmup: true }] : [];
  for (let index = 1; index <= count; index += 1) runs.push({ index, warmup: false });
  return runs;
}

/** pgim's node process RSS in MB. */
export async function rssOf(system: PgimSystem): Promise<number> {
  const pid = system.daemonPid();
  if (pid === undefined) throw new Error(`${system.label} is not running`);
  return (await footprint(pid)).rssMb;
}

/** The median time of `count` sequential GETs of `url`, a new connection each (as kubelet probes); a failure throws. */
export async function medianGet(url: string, count: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < count; i += 1) {
    const outcome = await timedGet(url, false, 60_000);
    if (outcome.status !== 200) throw new Error(`GET ${url}: ${outcome.status ?? 'no answer'}`);
    times.push(outcome.ms);
  }
  return median(times);
}

/** The SQL a stretch of pgim's exporter ran, from PostgreSQL's own log (`log_min_duration_statement = 0`). */
export interface SqlWork {
  /** Statements (simple-protocol statements and extended-protocol executes). */
  statements: number;
  /** Server time of every logged step (parse, bind, execute, statement), in ms. */
  ms: number;
  /** Distinct sessions those statements ran on (each a connection opened). */
  sessions: number;
}

/**
 * PostgreSQL settings that make every statement's duration appear in the log pgim relays (its JSON lines on stdout,
 * which the harness appends to the system's log file): the exporter's SQL can then be counted and timed from
 * outside, per `application_name`, with no extension to preload (pgim refuses shared_preload_libraries).
 */
export const statementLogParameters: Readonly<Record<string, string>> = { log_min_duration_statement: '0' };

const durationPattern = /^duration: ([0-9.]+) ms {2}(statement|execute|parse|bind)\b/;

/**
 * Reads pgim's log from a byte offset for the SQL of `applicationName`; waits until a marker statement the harness
 * runs afterwards has come through the pipe, so every earlier line has too.
 */
export class StatementLog {
  private markers = 0;

  constructor(
    private readonly logFile: string,
    private readonly login: Login,
    private readonly applicationName = 'cnpg_metrics_exporter',
  ) {}

  private async offset(): Promise<number> {
    return (await stat(this.logFile)).size;
  }

  /**
   * Where the log ends once every line written so far has come through the pipe (a marker statement has): the
   * offset to count from. Lines PostgreSQL wrote before, and pgim relays late, are not counted after it.
   */
  async sync(): Promise<number> {
    const from = await this.offset();
    const text = await this.throughPipe(from);
    return from + Buffer.byteLength(text);
  }

  /** Runs a marker statement and waits until its line has come through the pipe; the log text from `from`. */
  private async throughPipe(from: number): Promise<string> {
    this.markers += 1;
    const marker = `pgim-bench-marker-${process.pid}-${this.markers}`;
    await queryOnce(this.login, `SELECT '${marker}'`, 30_000);
    let text = '';
    await pollUntil('the marker statement to come through pgim\'s log pipe', async () => {
      text = await this.read(from);
      const at = text.indexOf(marker);
      if (at === -1) return false;
      const end = text.indexOf('\n', at);
      if (end === -1) return false;
      text = text.slice(0, end + 1);
      return true;
    }, 120_000);
    return text;
  }

  /** The SQL of the application from `from` (see `sync`) until now. */
  async since(from: number): Promise<SqlWork> {
    const text = await this.throughPipe(from);
    const work: SqlWork = { statements: 0, ms: 0, sessions: 0 };
    const sessions = new Set<string>();
    for (const line of text.split('\n')) {
      if (!line.includes(this.applicationName)) continue;
      let record: { application_name?: string; message?: string; session_id?: string } | undefined;
      try {
        record = (JSON.parse(line) as { record?: typeof record }).record;
      } catch {
        continue;
      }
      if (record?.application_name !== this.applicationName) continue;
      const match = durationPattern.exec(record.message ?? '');
      if (match === null) continue;
      work.ms += Number(match[1]);
      if (match[2] === 'statement' || match[2] === 'execute') work.statements += 1;
      if (record.session_id !== undefined) sessions.add(record.session_id);
    }
    work.sessions = sessions.size;
    return work;
  }

  private async read(from: number): Promise<string> {
    const handle = await open(this.logFile, 'r');
    try {
      const size = (await handle.stat()).size;
      const buffer = Buffer.alloc(Math.max(0, size - from));
      await handle.read(buffer, 0, buffer.length, from);
      return buffer.toString('utf8');
    } finally {
      await handle.close();
    }
  }
}

/** A CNPG-format queries file. */
export function queriesYaml(queries: Readonly<Record<string, { query: string; targetDatabases?: readonly string[]; maxRows?: number; metrics: readonly [string, 'LABEL' | 'GAUGE' | 'COUNTER'][] }>>): string {
  let text = '';
  for (const [name, q] of Object.entries(queries)) {
    text += `${name}:\n  query: ${JSON.stringify(q.query)}\n`;
    if (q.targetDatabases !== undefined) text += `  target_databases: ${JSON.stringify(q.targetDatabases)}\n`;
    if (q.maxRows !== undefined) text += `  max_rows: ${q.maxRows}\n`;
    text += '  metrics:\n';
    for (const [column, usage] of q.metrics) text += `    - ${column}: {usage: ${usage}, description: ${JSON.stringify(column)}}\n`;
  }
  return text;
}

/**
 * Switches the exporter's TTL (and custom queries) live and waits until it applies: with TTL 0 a scrape collects
 * (the collection counter moves past its value before the change), with a TTL two scrapes in a row read the same
 * collection. A collection over 1,000 databases takes minutes on a loaded machine: generous timeouts.
 */
export async function setMonitoring(system: PgimSystem, ttl: '0' | '30s' | '10m', configMaps: readonly string[], extraSpec: Record<string, unknown> = {}): Promise<void> {
  let before = NaN;
  // Right after the start the metrics server may not listen yet.
  await pollUntil('pgim\'s metrics endpoint', async () => {
    before = collections((await scrape(system.metricsUrl)).text);
    return true;
  }, 120_000);
  await system.changeSpec({ ...extraSpec, monitoring: { metricsQueriesTTL: ttl, customQueriesConfigMap: configMaps.map((name) => ({ name, key: 'queries' })) } });
  await pollUntil(`pgim to apply metricsQueriesTTL ${ttl}`, async () => {
    const first = collections((await scrape(system.metricsUrl)).text);
    if (ttl === '0') return first > before;
    return collections((await scrape(system.metricsUrl)).text) === first;
  }, 1_800_000);
}
