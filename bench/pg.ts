import { join } from 'node:path';
import pg from 'pg';
import { defaultParameters } from '../src/render/parameters.js';
import { pgBinDir, sleep } from './env.js';
import type { ProcessRegistry } from './proc.js';

/** How the harness logs in over TCP on 127.0.0.1 (each system has its own port and role). */
export interface Login {
  /** 127.0.0.1 unless the system runs in its own network namespace (cnpg: a pod IP). */
  host?: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

/**
 * The PostgreSQL settings every system runs with, so only the manager differs: CloudNativePG's defaults (what pgim
 * renders anyway), the two sizes the benchmark plan fixes, and the values pgim enforces.
 */
export const commonParameters: Readonly<Record<string, string>> = {
  // pgim's own defaults (CloudNativePG's), imported so the comparison stays fair when they change.
  ...defaultParameters,
  shared_buffers: '128MB',
  max_connections: '100',
  archive_mode: 'off',
  hot_standby: 'on',
  logging_collector: 'off',
  restart_after_crash: 'off',
};

/** The subset a Cluster manifest may set (pgim controls the rest itself and refuses them in the spec). */
export const clusterParameters: Readonly<Record<string, string>> = {
  shared_buffers: commonParameters.shared_buffers ?? '128MB',
  max_connections: commonParameters.max_connections ?? '100',
};

export async function connect(login: Login, timeoutMs = 2_000): Promise<pg.Client> {
  const client = new pg.Client({ host: '127.0.0.1', ...login, connectionTimeoutMillis: timeoutMs });
  // A server that stops under an open session emits 'error' on the client; the benchmark expects that.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  return client;
}

export async function queryOnce<T extends pg.QueryResultRow>(login: Login, sql: string, timeoutMs = 2_000): Promise<T[]> {
  const client = await connect(login, timeoutMs);
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}

const pollIntervalMs = 10;

/**
 * Polls until `check` returns true; resolves with performance.now() at success. The same 10 ms poller is used for
 * every system, so its granularity is common to all and cancels out of the comparisons.
 */
export async function pollUntil(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let lastError = '';
  for (;;) {
    try {
      if (await check()) return performance.now();
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError === '' ? '' : ` (last error: ${lastError})`}`);
    await sleep(pollIntervalMs);
  }
}

/** Accepting = a login and a query succeed (what a client can use), like `pg_isready` plus authentication. */
export function waitAccepting(login: Login, timeoutMs = 60_000): Promise<number> {
  return pollUntil(`PostgreSQL on port ${login.port} to accept connections`, async () => {
    await queryOnce(login, 'SELECT 1', 1_000);
    return true;
  }, timeoutMs);
}

/** Read-write = accepting and `pg_is_in_recovery()` is false (a primary, promoted if it had to be). */
export function waitReadWrite(login: Login, timeoutMs = 60_000): Promise<number> {
  return pollUntil(`PostgreSQL on port ${login.port} to be read-write`, async () => {
    const rows = await queryOnce<{ recovery: boolean }>(login, 'SELECT pg_is_in_recovery() AS recovery', 1_000);
    return rows[0]?.recovery === false;
  }, timeoutMs);
}

/** The timeline a primary writes on now (the first 8 hex digits of its current WAL file name). */
export async function currentTimeline(login: Login): Promise<number> {
  const rows = await queryOnce<{ wal: string }>(login, 'SELECT pg_walfile_name(pg_current_wal_lsn()) AS wal');
  const wal = rows[0]?.wal;
  if (wal === undefined) throw new Error('no WAL file name');
  return parseInt(wal.slice(0, 8), 16);
}

/** Sessions a benchmark leaves open across a shutdown; `close` tolerates a server that is already gone. */
export interface OpenSessions {
  close(): Promise<void>;
}

export async function openIdleSessions(login: Login, count: number): Promise<OpenSessions> {
  const clients = await Promise.all(Array.from({ length: count }, () => connect(login, 10_000)));
  return { close: () => closeAll(clients) };
}

/** One session inside a transaction that has written (so it holds an XID), left open. */
export async function openTransaction(login: Login): Promise<OpenSessions> {
  const client = await connect(login, 10_000);
  await client.query('BEGIN');
  await client.query('SELECT txid_current()');
  return { close: () => closeAll([client]) };
}

async function closeAll(clients: readonly pg.Client[]): Promise<void> {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
}

/** "Latest checkpoint's TimeLineID" of a stopped cluster, from pg_controldata (exact after a clean shutdown). */
export async function controlFileTimeline(processes: ProcessRegistry, pgdata: string): Promise<number> {
  const report = await processes.output('pg_controldata', join(pgBinDir, 'pg_controldata'), ['-D', pgdata], { asServiceUser: true, env: { LC_ALL: 'C' } });
  const line = report.split('\n').find((l) => l.startsWith("Latest checkpoint's TimeLineID:"));
  const timeline = Number(line?.split(':')[1]?.trim());
  if (!Number.isInteger(timeline)) throw new Error(`pg_controldata -D ${pgdata}: no timeline in its report`);
  return timeline;
}

/**
 * Writable = `pg_is_in_recovery()` is false and a write commits (a promoted server may still refuse writes, e.g.
 * while a manager holds it read-only). `table` must exist; one row per successful poll is added.
 */
export function waitWritable(login: Login, table: string, timeoutMs = 60_000): Promise<number> {
  return pollUntil(`PostgreSQL on port ${login.port} to take writes`, async () => {
    const client = await connect(login, 1_000);
    try {
      const rows = (await client.query<{ recovery: boolean }>('SELECT pg_is_in_recovery() AS recovery')).rows;
      if (rows[0]?.recovery !== false) return false;
      await client.query(`INSERT INTO ${table} DEFAULT VALUES`);
      return true;
    } finally {
      await client.end().catch(() => undefined);
    }
  }, timeoutMs);
}

/** A replica as the streaming check reaches it: its application_name and a superuser login. */
export interface Replica {
  name: string;
  login: Login;
}

/**
 * Until every replica streams the primary's current timeline: `pg_stat_replication` on the primary shows it
 * streaming, and its own `pg_stat_wal_receiver` is streaming with `received_tli` equal to the primary's timeline.
 * The primary's view alone can be fooled: a replica that received WAL past the fork point of a new timeline keeps
 * reconnecting, streams the old timeline's last segment up to the fork each time (so it shows as streaming for a
 * moment), and never switches.
 */
export function waitStreaming(primary: Login, replicas: readonly Replica[], timeoutMs = 60_000): Promise<number> {
  return pollUntil(`${replicas.map((r) => r.name).join(', ')} streaming from port ${primary.port}`, async () => {
    const rows = await queryOnce<{ name: string }>(primary, "SELECT application_name AS name FROM pg_stat_replication WHERE state = 'streaming'", 1_000);
    if (!replicas.every((replica) => rows.some((r) => r.name === replica.name))) return false;
    const timeline = await currentTimeline(primary);
    for (const replica of replicas) {
      const receiver = await queryOnce<{ status: string; tli: number }>(replica.login, 'SELECT status, received_tli AS tli FROM pg_stat_wal_receiver', 1_000);
      if (receiver[0]?.status !== 'streaming' || receiver[0].tli !== timeline) return false;
    }
    return true;
  }, timeoutMs);
}
