import type pg from 'pg';
import type { PostgresInstance } from '../postgres/instance.js';
import { pgDriver, withLocalClient } from '../postgres/sql.js';
import type { Address } from '../replication/topology.js';
import { replicationSsl } from '../replication/wait-primary.js';
import type { CertificatePaths } from '../tls/files.js';
import { hotStandbySettings, type HotStandbySetting, type LocalFacts, type ReplicaReport, type Values } from './decision.js';

// The side of the restart decision that asks PostgreSQL: this instance's settings, its control file, its replicas.

/** Recovery-only settings (removed at promotion, constant on replicas) never justify a restart. */
const counts = (name: string): boolean => !name.startsWith('recovery_target');

/**
 * Each setting pending a restart or among the hot-standby ones, with its running value and, when pending, its value
 * after a restart: the last line of the loaded files, or the built-in default when the files no longer set it
 * (CNPG's `GetDecreasedSensibleSettings`). A pending line carries the error "setting could not be applied": it counts.
 */
const settingsQuery = `
SELECT s.name, s.setting, s.pending_restart,
       CASE WHEN s.pending_restart THEN COALESCE(f.setting, s.boot_val) END AS next
  FROM pg_catalog.pg_settings s
  LEFT JOIN (SELECT name, setting, rank() OVER (PARTITION BY name ORDER BY seqno DESC) AS rank
               FROM pg_catalog.pg_file_settings) f
         ON f.name = s.name AND f.rank = 1
 WHERE s.pending_restart OR s.name = ANY($1)`;

interface SettingRow {
  name: string;
  setting: string;
  pending_restart: boolean;
  next?: string | null;
}

function hotStandbyValues(rows: readonly { name: string; value: string | null }[]): Values {
  const values: Values = {};
  for (const { name, value } of rows) {
    const number = value === null ? NaN : Number(value);
    if ((hotStandbySettings as readonly string[]).includes(name) && Number.isInteger(number)) values[name as HotStandbySetting] = number;
  }
  return values;
}

async function readSettings(client: pg.Client): Promise<Pick<LocalFacts, 'pending' | 'running' | 'next'>> {
  const { rows } = await client.query<SettingRow>(settingsQuery, [hotStandbySettings]);
  return {
    pending: rows.filter((row) => row.pending_restart && counts(row.name)).map((row) => row.name).sort(),
    running: hotStandbyValues(rows.map((row) => ({ name: row.name, value: row.setting }))),
    next: hotStandbyValues(rows.filter((row) => row.pending_restart).map((row) => ({ name: row.name, value: row.next ?? null }))),
  };
}

/** pg_controldata's labels for the hot-standby settings the primary last WAL-logged. */
const controlLabels: Record<HotStandbySetting, string> = {
  max_connections: 'max_connections setting',
  max_prepared_transactions: 'max_prepared_xacts setting',
  max_locks_per_transaction: 'max_locks_per_xact setting',
  max_wal_senders: 'max_wal_senders setting',
  max_worker_processes: 'max_worker_processes setting',
};

export function parseControlFileSettings(raw: string): Values {
  const lines = raw.split('\n');
  return hotStandbyValues(
    hotStandbySettings.map((name) => ({ name, value: lines.find((line) => line.startsWith(`${controlLabels[name]}:`))?.slice(controlLabels[name].length + 1).trim() ?? null })),
  );
}

/** This instance's facts; the control file is read (a pg_controldata run) only on a replica that needs it. */
export async function readLocalFacts(instance: PostgresInstance): Promise<Omit<LocalFacts, 'role' | 'strategy' | 'instances'> & { inRecovery: boolean }> {
  const { settings, inRecovery, replayPaused, postmasterStartMs } = await withLocalClient(instance.connection, async (client) => {
    const { rows } = await client.query<{ in_recovery: boolean; paused: boolean; started: string }>(
      "SELECT pg_is_in_recovery() AS in_recovery, pg_is_in_recovery() AND pg_get_wal_replay_pause_state() = 'paused' AS paused, (extract(epoch FROM pg_postmaster_start_time()) * 1000)::text AS started",
    );
    const postmasterStartMs = Number(rows[0]?.started);
    return { settings: await readSettings(client), inRecovery: rows[0]?.in_recovery ?? false, replayPaused: rows[0]?.paused ?? false, postmasterStartMs };
  });
  const needsControlFile = inRecovery && (replayPaused || settings.pending.some((name) => (hotStandbySettings as readonly string[]).includes(name)));
  const control = needsControlFile ? await instance.controlData() : undefined;
  return { ...settings, controlFile: control === undefined ? undefined : parseControlFileSettings(control.raw), replayPaused, inRecovery, postmasterStartMs };
}

/** Asks a replica, as streaming_replica with the replication certificate, what it runs with and what is pending. */
export async function askReplica(name: string, address: Address, certificates: CertificatePaths): Promise<ReplicaReport> {
  const { Client } = await pgDriver();
  const client = new Client({ host: address.host, port: address.port, user: 'streaming_replica', database: 'postgres', ssl: await replicationSsl(certificates), connectionTimeoutMillis: 2000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const { rows } = await client.query<{ in_recovery: boolean; started: string }>(
      'SELECT pg_is_in_recovery() AS in_recovery, (extract(epoch FROM pg_postmaster_start_time()) * 1000)::text AS started',
    );
    if (rows[0]?.in_recovery !== true) return { name, running: undefined, pending: [], error: 'not in recovery' };
    const postmasterStartMs = Number(rows[0].started);
    // pg_settings only (pg_file_settings is for superusers): what it runs with and what waits for a restart.
    const result = await client.query<SettingRow>('SELECT name, setting, pending_restart FROM pg_catalog.pg_settings WHERE pending_restart OR name = ANY($1)', [hotStandbySettings]);
    const settings = {
      pending: result.rows.filter((row) => row.pending_restart && counts(row.name)).map((row) => row.name),
      running: hotStandbyValues(result.rows.map((row) => ({ name: row.name, value: row.setting }))),
    };
    return { name, running: settings.running, pending: settings.pending, postmasterStartMs };
  } catch (err) {
    return { name, running: undefined, pending: [], error: err instanceof Error ? err.message : String(err) };
  } finally {
    await client.end().catch(() => undefined);
  }
}
