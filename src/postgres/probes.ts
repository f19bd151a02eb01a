import type pg from 'pg';
import { pgDriver, type LocalConnection } from './sql.js';

// The SQL behind the health probes (startup, readiness, liveness): cheap, one session each, CNPG's semantics.

/** `pg_isready` semantics without a process: 0 accepting, 1 rejecting (starting up, shutting down), 2 no response. */
export type PingResult = 0 | 1 | 2;

/**
 * Opens and closes one session over the Unix socket, like libpq's PQping: a server that answers with
 * `cannot_connect_now` (57P03) is rejecting; any other answer, even an error, means it accepts connections.
 */
export async function pingLocal(target: LocalConnection, timeoutMs: number): Promise<PingResult> {
  const { Client } = await pgDriver();
  const client = new Client({
    host: target.socketDir,
    port: target.port,
    user: 'postgres',
    database: 'postgres',
    application_name: 'pgim_probe',
    connectionTimeoutMillis: timeoutMs,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return 0;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === '57P03') return 1;
    return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? 0 : 2;
  } finally {
    await client.end().catch(() => undefined);
  }
}

interface StreamingRow {
  ready: boolean;
  lag: string;
  latest_end_time: string;
}

/**
 * CNPG's `streaming` probe: passes on a primary, on a replica without `primary_conninfo` (log shipping), and on a
 * streaming replica whose lag (`latest_end_lsn - pg_last_wal_replay_lsn()`) is within `maximumLag` bytes; without
 * `maximumLag`, once it has streamed at least once. Throws with CNPG's messages otherwise.
 */
export async function checkStreaming(client: pg.Client, maximumLag: number | undefined): Promise<void> {
  const { rows } = await client.query<StreamingRow>(
    `WITH lag AS (SELECT (latest_end_lsn - pg_catalog.pg_last_wal_replay_lsn()) AS value, latest_end_time
                    FROM pg_catalog.pg_stat_wal_receiver)
     SELECT CASE WHEN NOT pg_catalog.pg_is_in_recovery() THEN true
                 WHEN (SELECT COALESCE(setting, '') = '' FROM pg_catalog.pg_settings WHERE name = 'primary_conninfo') THEN true
                 WHEN (SELECT value FROM lag) <= $1::numeric THEN true
                 ELSE false END AS ready,
            COALESCE((SELECT value FROM lag), 0)::text AS lag,
            COALESCE((SELECT latest_end_time FROM lag), '-infinity')::text AS latest_end_time`,
    [maximumLag === undefined ? '18446744073709551615' : String(maximumLag)],
  );
  const row = rows[0];
  if (!row) throw new Error('streaming replication check returned no row');
  if (row.ready) return;
  if (maximumLag !== undefined && Number(row.lag) > maximumLag) {
    throw new Error(`streaming replica lagging; detectedLag=${row.lag} configuredLag=${maximumLag} latestEndTime=${row.latest_end_time}`);
  }
  throw new Error('replica not connected via streaming replication');
}
