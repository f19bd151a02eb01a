import type pg from 'pg';
import { configHashParameter } from '../render/index.js';

/** The part of CNPG's `PostgresqlStatus` that comes from PostgreSQL itself. */
export interface PostgresReportedStatus {
  systemID: string;
  isPrimary: boolean;
  pendingRestart: boolean;
  timeLineID: number;
  currentLsn?: string;
  currentWAL?: string;
  receivedLsn?: string;
  replayLsn?: string;
  replayPaused: boolean;
  isWalReceiverActive: boolean;
  loadedConfigurationHash?: string;
  lastArchivedWAL?: string;
  lastArchivedWALTime?: string;
  lastFailedWAL?: string;
  lastFailedWALTime?: string;
  isArchivingWAL?: boolean;
  replicationInfo?: ReplicationInfo[];
}

export interface ReplicationInfo {
  applicationName: string;
  state: string;
  receivedLsn: string;
  writeLsn: string;
  flushLsn: string;
  replayLsn: string;
  writeLag: string;
  flushLag: string;
  replayLag: string;
  syncState: string;
  syncPriority: number;
}

interface StatusRow {
  system_id: string;
  is_primary: boolean;
  pending_restart: boolean;
  timeline: number;
  current_lsn: string | null;
  current_wal: string | null;
  received_lsn: string | null;
  replay_lsn: string | null;
  replay_paused: boolean;
  wal_receiver_active: boolean;
  config_hash: string;
  last_archived_wal: string | null;
  last_archived_time: Date | null;
  last_failed_wal: string | null;
  last_failed_time: Date | null;
}

const statusQuery = `
SELECT (pg_control_system()).system_identifier::text AS system_id,
       NOT pg_is_in_recovery() AS is_primary,
       EXISTS (SELECT 1 FROM pg_settings WHERE pending_restart) AS pending_restart,
       CASE WHEN pg_is_in_recovery() THEN (SELECT received_tli FROM pg_stat_wal_receiver)
            ELSE (pg_control_checkpoint()).timeline_id END AS timeline,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS current_lsn,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END AS current_wal,
       pg_last_wal_receive_lsn()::text AS received_lsn,
       pg_last_wal_replay_lsn()::text AS replay_lsn,
       CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END AS replay_paused,
       EXISTS (SELECT 1 FROM pg_stat_wal_receiver) AS wal_receiver_active,
       COALESCE(current_setting('${configHashParameter}', true), '') AS config_hash,
       a.last_archived_wal, a.last_archived_time, a.last_failed_wal, a.last_failed_time
  FROM pg_stat_archiver a`;

const replicationQuery = `
SELECT application_name, COALESCE(state, '') AS state,
       COALESCE(sent_lsn::text, '') AS sent_lsn, COALESCE(write_lsn::text, '') AS write_lsn,
       COALESCE(flush_lsn::text, '') AS flush_lsn, COALESCE(replay_lsn::text, '') AS replay_lsn,
       COALESCE(write_lag::text, '') AS write_lag, COALESCE(flush_lag::text, '') AS flush_lag,
       COALESCE(replay_lag::text, '') AS replay_lag, COALESCE(sync_state, '') AS sync_state,
       COALESCE(sync_priority, 0) AS sync_priority
  FROM pg_stat_replication
 WHERE usename = 'streaming_replica' AND application_name ~ $1
 ORDER BY application_name`;

interface ReplicationRow {
  application_name: string;
  state: string;
  sent_lsn: string;
  write_lsn: string;
  flush_lsn: string;
  replay_lsn: string;
  write_lag: string;
  flush_lag: string;
  replay_lag: string;
  sync_state: string;
  sync_priority: number;
}

const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** One round of CNPG's `GetStatus` queries. */
export async function queryStatus(client: pg.Client, clusterName: string): Promise<PostgresReportedStatus> {
  const { rows } = await client.query<StatusRow>(statusQuery);
  const row = rows[0];
  if (!row) throw new Error('status query returned no row');
  const status: PostgresReportedStatus = {
    systemID: row.system_id,
    isPrimary: row.is_primary,
    pendingRestart: row.pending_restart,
    timeLineID: row.timeline,
    replayPaused: row.replay_paused,
    isWalReceiverActive: row.wal_receiver_active,
  };
  if (row.config_hash !== '') status.loadedConfigurationHash = row.config_hash;
  if (row.current_lsn !== null) status.currentLsn = row.current_lsn;
  if (row.current_wal !== null) status.currentWAL = row.current_wal;
  if (!row.is_primary) {
    if (row.replay_lsn !== null) status.replayLsn = row.replay_lsn;
    // CNPG forces received >= replayed: a replica restored from archive has received nothing by streaming.
    const received = row.received_lsn ?? row.replay_lsn;
    if (received !== null) status.receivedLsn = received;
  }
  if (row.last_archived_wal !== null) status.lastArchivedWAL = row.last_archived_wal;
  if (row.last_archived_time !== null) status.lastArchivedWALTime = row.last_archived_time.toISOString();
  if (row.last_failed_wal !== null) status.lastFailedWAL = row.last_failed_wal;
  if (row.last_failed_time !== null) status.lastFailedWALTime = row.last_failed_time.toISOString();
  status.isArchivingWAL =
    row.last_archived_time !== null && (row.last_failed_time === null || row.last_archived_time > row.last_failed_time);
  if (row.is_primary) {
    const replicas = await client.query<ReplicationRow>(replicationQuery, [`^${escapeRegex(clusterName)}-[0-9]+$`]);
    status.replicationInfo = replicas.rows.map((r) => ({
      applicationName: r.application_name,
      state: r.state,
      receivedLsn: r.sent_lsn,
      writeLsn: r.write_lsn,
      flushLsn: r.flush_lsn,
      replayLsn: r.replay_lsn,
      writeLag: r.write_lag,
      flushLag: r.flush_lag,
      replayLag: r.replay_lag,
      syncState: r.sync_state,
      syncPriority: r.sync_priority,
    }));
  }
  return status;
}
