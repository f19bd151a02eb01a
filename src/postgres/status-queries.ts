import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { clusterConfigHashParameter } from '../render/index.js';

/** The part of CNPG's `PostgresqlStatus` that comes from PostgreSQL itself. */
export interface PostgresReportedStatus {
  systemID: string;
  isPrimary: boolean;
  pendingRestart: boolean;
  /** A pending hot-standby setting (CNPG's list) is lowered: replicas must restart after the primary, not before. */
  pendingRestartForDecrease: boolean;
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
  replicationSlotsInfo?: ReplicationSlotInfo[];
  pgStatBasebackupsInfo?: BasebackupInfo[];
}

export interface ReplicationSlotInfo {
  slotName: string;
  plugin: string;
  slotType: string;
  datoid: string;
  database: string;
  xmin: string;
  catalogXmin: string;
  restartLsn: string;
  walStatus: string;
  safeWalSize?: number;
  active: boolean;
}

/** A `pg_basebackup` in progress from this instance (CNPG lists the ones whose application name ends in `-join`). */
export interface BasebackupInfo {
  usename: string;
  application_name: string;
  backend_start: string;
  phase: string;
  backup_total: number;
  backup_streamed: number;
  backup_total_pretty: string;
  backup_streamed_pretty: string;
  tablespaces_total: number;
  tablespaces_streamed: number;
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
  /** A string, as in CNPG's `PgStatReplication` (the text of `pg_stat_replication.sync_priority`). */
  syncPriority: string;
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
       COALESCE(current_setting('${clusterConfigHashParameter}', true), '') AS config_hash,
       a.last_archived_wal, a.last_archived_time, a.last_failed_wal, a.last_failed_time
  FROM pg_stat_archiver a`;

/**
 * CNPG's `GetDecreasedSensibleSettings`: hot-standby settings waiting for a restart whose new value (the last line of
 * the files, not applied yet; or the default when the line was removed) is lower than the running one.
 */
const decreasedSettingsQuery = `
SELECT pending.name
  FROM (SELECT name, setting AS current_setting, boot_val AS default_setting
          FROM pg_catalog.pg_settings WHERE pending_restart) pending
  LEFT JOIN (SELECT name, setting AS new_setting
               FROM (SELECT name, setting, applied, rank() OVER (PARTITION BY name ORDER BY seqno DESC) AS rank
                       FROM pg_catalog.pg_file_settings) f
              WHERE rank = 1 AND NOT applied) file ON pending.name = file.name
 WHERE pending.name IN ('max_connections', 'max_prepared_transactions', 'max_wal_senders', 'max_worker_processes',
                        'max_locks_per_transaction')
   AND CAST(COALESCE(file.new_setting, pending.default_setting) AS integer) < CAST(pending.current_setting AS integer)`;

const replicationQuery = `
SELECT application_name, COALESCE(state, '') AS state,
       COALESCE(sent_lsn::text, '') AS sent_lsn, COALESCE(write_lsn::text, '') AS write_lsn,
       COALESCE(flush_lsn::text, '') AS flush_lsn, COALESCE(replay_lsn::text, '') AS replay_lsn,
       COALESCE(write_lag, '0'::interval)::text AS write_lag, COALESCE(flush_lag, '0'::interval)::text AS flush_lag,
       COALESCE(replay_lag, '0'::interval)::text AS replay_lag, COALESCE(sync_state, '') AS sync_state,
       COALESCE(sync_priority, 0)::text AS sync_priority
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
  sync_priority: string;
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
    pendingRestartForDecrease: row.pending_restart && (await client.query(decreasedSettingsQuery)).rows.length > 0,
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
    status.replicationSlotsInfo = (await client.query<SlotRow>(slotsQuery)).rows.map((r) => {
      const slot: ReplicationSlotInfo = {
        slotName: r.slot_name,
        plugin: r.plugin,
        slotType: r.slot_type,
        datoid: r.datoid,
        database: r.database,
        xmin: r.xmin,
        catalogXmin: r.catalog_xmin,
        restartLsn: r.restart_lsn,
        walStatus: r.wal_status,
        active: r.active,
      };
      if (r.safe_wal_size !== null) slot.safeWalSize = Number(r.safe_wal_size);
      return slot;
    });
    status.pgStatBasebackupsInfo = (await client.query<BasebackupRow>(basebackupsQuery)).rows.map((r) => ({
      ...r,
      backup_total: Number(r.backup_total),
      backup_streamed: Number(r.backup_streamed),
      tablespaces_total: Number(r.tablespaces_total),
      tablespaces_streamed: Number(r.tablespaces_streamed),
    }));
  }
  return status;
}

type BasebackupRow = Omit<BasebackupInfo, 'backup_total' | 'backup_streamed' | 'tablespaces_total' | 'tablespaces_streamed'> & {
  backup_total: string;
  backup_streamed: string;
  tablespaces_total: string;
  tablespaces_streamed: string;
};

interface SlotRow {
  slot_name: string;
  plugin: string;
  slot_type: string;
  datoid: string;
  database: string;
  xmin: string;
  catalog_xmin: string;
  restart_lsn: string;
  wal_status: string;
  safe_wal_size: string | null;
  active: boolean;
}

const slotsQuery = `
SELECT slot_name, COALESCE(plugin::text, '') AS plugin, COALESCE(slot_type, '') AS slot_type,
       COALESCE(datoid::text, '') AS datoid, COALESCE(database::text, '') AS database,
       COALESCE(xmin::text, '') AS xmin, COALESCE(catalog_xmin::text, '') AS catalog_xmin,
       COALESCE(restart_lsn::text, '') AS restart_lsn, COALESCE(wal_status, '') AS wal_status,
       safe_wal_size::text AS safe_wal_size, active
  FROM pg_catalog.pg_replication_slots
 ORDER BY slot_name`;

const basebackupsQuery = `
SELECT a.usename::text AS usename, a.application_name, a.backend_start::text AS backend_start, b.phase,
       COALESCE(b.backup_total, 0)::text AS backup_total, b.backup_streamed::text AS backup_streamed,
       pg_catalog.pg_size_pretty(COALESCE(b.backup_total, 0)) AS backup_total_pretty,
       pg_catalog.pg_size_pretty(b.backup_streamed) AS backup_streamed_pretty,
       b.tablespaces_total::text AS tablespaces_total, b.tablespaces_streamed::text AS tablespaces_streamed
  FROM pg_catalog.pg_stat_progress_basebackup b
  JOIN pg_catalog.pg_stat_activity a USING (pid)
 WHERE a.application_name ~ '-join$'
 ORDER BY 1, 2`;

/** WAL files waiting for the archiver: `*.ready` in `pg_wal/archive_status` (CNPG's `readyWalFiles`). */
export async function countReadyWalFiles(pgdata: string): Promise<number> {
  try {
    return (await readdir(join(pgdata, 'pg_wal', 'archive_status'))).filter((name) => name.endsWith('.ready')).length;
  } catch {
    return 0;
  }
}
