/**
 * pgim's default monitoring queries, in CloudNativePG's custom-queries format. They produce the same families (names,
 * labels, types) as CNPG's `cnpg-default-monitoring` ConfigMap, so dashboards and alerts built for CNPG work, but
 * they are written for pgim: every function that fails on a standby (`pg_current_wal_lsn()`) is guarded by the role,
 * and every object is schema-qualified. `spec.monitoring.disableDefaultQueries: true` turns them off.
 */
export const defaultQueriesYaml = String.raw`
backends:
  query: |
    SELECT a.datname, a.usename, a.application_name, s.state,
           COALESCE(a.total, 0) AS total, COALESCE(a.max_tx_seconds, 0) AS max_tx_duration_seconds
      FROM (VALUES ('active'), ('idle'), ('idle in transaction'), ('idle in transaction (aborted)'),
                   ('fastpath function call'), ('disabled')) AS s(state)
      JOIN (SELECT datname, usename, COALESCE(application_name, '') AS application_name, state,
                   pg_catalog.count(*) AS total,
                   COALESCE(pg_catalog.max(EXTRACT(EPOCH FROM (pg_catalog.now() OPERATOR(pg_catalog.-) xact_start))), 0) AS max_tx_seconds
              FROM pg_catalog.pg_stat_activity
             WHERE usename IS NOT NULL
             GROUP BY datname, usename, application_name, state) a
        ON a.state OPERATOR(pg_catalog.=) s.state
  metrics:
    - datname: {usage: LABEL, description: "Database the backends are connected to"}
    - usename: {usage: LABEL, description: "Role the backends are logged in as"}
    - application_name: {usage: LABEL, description: "Application name the clients set"}
    - state: {usage: LABEL, description: "Backend state"}
    - total: {usage: GAUGE, description: "Backends in this state"}
    - max_tx_duration_seconds: {usage: GAUGE, description: "Age in seconds of the oldest open transaction among them"}

backends_waiting:
  query: |
    SELECT pg_catalog.count(*) AS total
      FROM pg_catalog.pg_stat_activity
     WHERE wait_event_type OPERATOR(pg_catalog.=) 'Lock'
  metrics:
    - total: {usage: GAUGE, description: "Backends currently waiting for a lock held by another backend"}

pg_database:
  query: |
    SELECT datname, pg_catalog.pg_database_size(oid) AS size_bytes,
           pg_catalog.age(datfrozenxid) AS xid_age, pg_catalog.mxid_age(datminmxid) AS mxid_age
      FROM pg_catalog.pg_database
     WHERE datallowconn
  metrics:
    - datname: {usage: LABEL, description: "Database name"}
    - size_bytes: {usage: GAUGE, description: "Disk space used by the database, in bytes"}
    - xid_age: {usage: GAUGE, description: "Transactions since the database's frozen transaction ID (wraparound distance)"}
    - mxid_age: {usage: GAUGE, description: "Multixacts since the database's frozen multixact ID (wraparound distance)"}

pg_postmaster:
  query: SELECT EXTRACT(EPOCH FROM pg_catalog.pg_postmaster_start_time()) AS start_time
  metrics:
    - start_time: {usage: GAUGE, description: "Postmaster start time, seconds since the Unix epoch"}

pg_replication:
  query: |
    SELECT CASE WHEN NOT pg_catalog.pg_is_in_recovery()
                  OR pg_catalog.pg_last_wal_receive_lsn() OPERATOR(pg_catalog.=) pg_catalog.pg_last_wal_replay_lsn() THEN 0
                ELSE GREATEST(0, EXTRACT(EPOCH FROM (pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.pg_last_xact_replay_timestamp())))
           END AS lag,
           pg_catalog.pg_is_in_recovery() AS in_recovery,
           EXISTS (SELECT 1 FROM pg_catalog.pg_stat_wal_receiver) AS is_wal_receiver_up,
           (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_replication) AS streaming_replicas
  metrics:
    - lag: {usage: GAUGE, description: "Seconds since the last replayed transaction on a standby that is behind (0 on a primary)"}
    - in_recovery: {usage: GAUGE, description: "1 while the instance is in recovery (a standby)"}
    - is_wal_receiver_up: {usage: GAUGE, description: "1 while a WAL receiver streams from an upstream"}
    - streaming_replicas: {usage: GAUGE, description: "Standbys streaming from this instance"}

pg_replication_slots:
  query: |
    SELECT slot_name, slot_type, COALESCE(database::text, '') AS database, active,
           pg_catalog.pg_wal_lsn_diff(
             CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_receive_lsn()
                  ELSE pg_catalog.pg_current_wal_lsn() END,
             restart_lsn) AS pg_wal_lsn_diff
      FROM pg_catalog.pg_replication_slots
     WHERE NOT temporary
  metrics:
    - slot_name: {usage: LABEL, description: "Slot name"}
    - slot_type: {usage: LABEL, description: "physical or logical"}
    - database: {usage: LABEL, description: "Database of a logical slot (empty for a physical one)"}
    - active: {usage: GAUGE, description: "1 while a consumer uses the slot"}
    - pg_wal_lsn_diff: {usage: GAUGE, description: "WAL bytes the slot holds back"}

pg_stat_archiver:
  predicate_query: |
    SELECT NOT pg_catalog.pg_is_in_recovery()
        OR pg_catalog.current_setting('archive_mode') OPERATOR(pg_catalog.=) 'always'
  query: |
    SELECT archived_count, failed_count,
           COALESCE(EXTRACT(EPOCH FROM (pg_catalog.now() OPERATOR(pg_catalog.-) last_archived_time)), -1) AS seconds_since_last_archival,
           COALESCE(EXTRACT(EPOCH FROM (pg_catalog.now() OPERATOR(pg_catalog.-) last_failed_time)), -1) AS seconds_since_last_failure,
           COALESCE(EXTRACT(EPOCH FROM last_archived_time), -1) AS last_archived_time,
           COALESCE(EXTRACT(EPOCH FROM last_failed_time), -1) AS last_failed_time,
           COALESCE(('x' OPERATOR(pg_catalog.||) pg_catalog.right(pg_catalog.split_part(last_archived_wal, '.', 1), 16))::pg_catalog.bit(64)::pg_catalog.int8, -1) AS last_archived_wal_start_lsn,
           COALESCE(('x' OPERATOR(pg_catalog.||) pg_catalog.right(pg_catalog.split_part(last_failed_wal, '.', 1), 16))::pg_catalog.bit(64)::pg_catalog.int8, -1) AS last_failed_wal_start_lsn,
           EXTRACT(EPOCH FROM stats_reset) AS stats_reset_time
      FROM pg_catalog.pg_stat_archiver
  metrics:
    - archived_count: {usage: COUNTER, description: "WAL files archived successfully"}
    - failed_count: {usage: COUNTER, description: "Failed attempts to archive a WAL file"}
    - seconds_since_last_archival: {usage: GAUGE, description: "Seconds since the last successful archival (-1: never)"}
    - seconds_since_last_failure: {usage: GAUGE, description: "Seconds since the last failed archival (-1: never)"}
    - last_archived_time: {usage: GAUGE, description: "Time of the last successful archival, seconds since the Unix epoch"}
    - last_failed_time: {usage: GAUGE, description: "Time of the last failed archival, seconds since the Unix epoch"}
    - last_archived_wal_start_lsn: {usage: GAUGE, description: "Start LSN of the last archived WAL file"}
    - last_failed_wal_start_lsn: {usage: GAUGE, description: "Start LSN of the last WAL file that failed to archive"}
    - stats_reset_time: {usage: GAUGE, description: "When these counters were last reset, seconds since the Unix epoch"}

pg_stat_bgwriter:
  runonserver: "<17.0.0"
  query: |
    SELECT checkpoints_timed, checkpoints_req, checkpoint_write_time, checkpoint_sync_time, buffers_checkpoint,
           buffers_clean, maxwritten_clean, buffers_backend, buffers_backend_fsync, buffers_alloc
      FROM pg_catalog.pg_stat_bgwriter
  metrics:
    - checkpoints_timed: {usage: COUNTER, description: "Checkpoints started by checkpoint_timeout"}
    - checkpoints_req: {usage: COUNTER, description: "Checkpoints requested (WAL volume, CHECKPOINT, shutdown)"}
    - checkpoint_write_time: {usage: COUNTER, description: "Milliseconds spent writing files during checkpoints"}
    - checkpoint_sync_time: {usage: COUNTER, description: "Milliseconds spent syncing files during checkpoints"}
    - buffers_checkpoint: {usage: COUNTER, description: "Buffers written by checkpoints"}
    - buffers_clean: {usage: COUNTER, description: "Buffers written by the background writer"}
    - maxwritten_clean: {usage: COUNTER, description: "Background writer rounds stopped at bgwriter_lru_maxpages"}
    - buffers_backend: {usage: COUNTER, description: "Buffers written directly by backends"}
    - buffers_backend_fsync: {usage: COUNTER, description: "fsync calls backends had to make themselves"}
    - buffers_alloc: {usage: COUNTER, description: "Buffers allocated"}

pg_stat_bgwriter_17:
  runonserver: ">=17.0.0"
  name: pg_stat_bgwriter
  query: |
    SELECT buffers_clean, maxwritten_clean, buffers_alloc, EXTRACT(EPOCH FROM stats_reset) AS stats_reset_time
      FROM pg_catalog.pg_stat_bgwriter
  metrics:
    - buffers_clean: {usage: COUNTER, description: "Buffers written by the background writer"}
    - maxwritten_clean: {usage: COUNTER, description: "Background writer rounds stopped at bgwriter_lru_maxpages"}
    - buffers_alloc: {usage: COUNTER, description: "Buffers allocated"}
    - stats_reset_time: {usage: GAUGE, description: "When these counters were last reset, seconds since the Unix epoch"}

pg_stat_checkpointer:
  runonserver: ">=17.0.0"
  query: |
    SELECT num_timed AS checkpoints_timed, num_requested AS checkpoints_req, restartpoints_timed, restartpoints_req,
           restartpoints_done, write_time, sync_time, buffers_written, EXTRACT(EPOCH FROM stats_reset) AS stats_reset_time
      FROM pg_catalog.pg_stat_checkpointer
  metrics:
    - checkpoints_timed: {usage: COUNTER, description: "Checkpoints started by checkpoint_timeout"}
    - checkpoints_req: {usage: COUNTER, description: "Checkpoints requested"}
    - restartpoints_timed: {usage: COUNTER, description: "Restartpoints started by timeout"}
    - restartpoints_req: {usage: COUNTER, description: "Restartpoints requested"}
    - restartpoints_done: {usage: COUNTER, description: "Restartpoints completed"}
    - write_time: {usage: COUNTER, description: "Milliseconds spent writing files during checkpoints and restartpoints"}
    - sync_time: {usage: COUNTER, description: "Milliseconds spent syncing files during checkpoints and restartpoints"}
    - buffers_written: {usage: COUNTER, description: "Buffers written during checkpoints and restartpoints"}
    - stats_reset_time: {usage: GAUGE, description: "When these counters were last reset, seconds since the Unix epoch"}

pg_stat_database:
  query: |
    SELECT datname, xact_commit, xact_rollback, blks_read, blks_hit, tup_returned, tup_fetched, tup_inserted,
           tup_updated, tup_deleted, conflicts, temp_files, temp_bytes, deadlocks, blk_read_time, blk_write_time
      FROM pg_catalog.pg_stat_database
     WHERE datname IS NOT NULL
  metrics:
    - datname: {usage: LABEL, description: "Database name"}
    - xact_commit: {usage: COUNTER, description: "Transactions committed"}
    - xact_rollback: {usage: COUNTER, description: "Transactions rolled back"}
    - blks_read: {usage: COUNTER, description: "Disk blocks read"}
    - blks_hit: {usage: COUNTER, description: "Blocks found in shared buffers"}
    - tup_returned: {usage: COUNTER, description: "Rows returned by queries"}
    - tup_fetched: {usage: COUNTER, description: "Rows fetched by queries"}
    - tup_inserted: {usage: COUNTER, description: "Rows inserted"}
    - tup_updated: {usage: COUNTER, description: "Rows updated"}
    - tup_deleted: {usage: COUNTER, description: "Rows deleted"}
    - conflicts: {usage: COUNTER, description: "Queries cancelled by recovery conflicts"}
    - temp_files: {usage: COUNTER, description: "Temporary files created"}
    - temp_bytes: {usage: COUNTER, description: "Bytes written to temporary files"}
    - deadlocks: {usage: COUNTER, description: "Deadlocks detected"}
    - blk_read_time: {usage: COUNTER, description: "Milliseconds spent reading blocks (track_io_timing)"}
    - blk_write_time: {usage: COUNTER, description: "Milliseconds spent writing blocks (track_io_timing)"}

pg_stat_replication:
  primary: true
  query: |
    SELECT usename, COALESCE(application_name, '') AS application_name,
           COALESCE(client_addr::text, '') AS client_addr, COALESCE(client_port::text, '') AS client_port,
           EXTRACT(EPOCH FROM backend_start) AS backend_start,
           COALESCE(pg_catalog.age(backend_xmin), 0) AS backend_xmin_age,
           pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), sent_lsn) AS sent_diff_bytes,
           pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), write_lsn) AS write_diff_bytes,
           pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), flush_lsn) AS flush_diff_bytes,
           COALESCE(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), replay_lsn), 0) AS replay_diff_bytes,
           COALESCE(EXTRACT(EPOCH FROM write_lag), 0)::float8 AS write_lag_seconds,
           COALESCE(EXTRACT(EPOCH FROM flush_lag), 0)::float8 AS flush_lag_seconds,
           COALESCE(EXTRACT(EPOCH FROM replay_lag), 0)::float8 AS replay_lag_seconds
      FROM pg_catalog.pg_stat_replication
  metrics:
    - usename: {usage: LABEL, description: "Role of the standby's connection"}
    - application_name: {usage: LABEL, description: "Standby's application name"}
    - client_addr: {usage: LABEL, description: "Standby's address"}
    - client_port: {usage: LABEL, description: "Standby's TCP port"}
    - backend_start: {usage: COUNTER, description: "When the WAL sender started, seconds since the Unix epoch"}
    - backend_xmin_age: {usage: COUNTER, description: "Age of the standby's xmin horizon"}
    - sent_diff_bytes: {usage: GAUGE, description: "WAL bytes not yet sent to the standby"}
    - write_diff_bytes: {usage: GAUGE, description: "WAL bytes the standby has not yet written"}
    - flush_diff_bytes: {usage: GAUGE, description: "WAL bytes the standby has not yet flushed"}
    - replay_diff_bytes: {usage: GAUGE, description: "WAL bytes the standby has not yet replayed"}
    - write_lag_seconds: {usage: GAUGE, description: "Lag until the standby reported the WAL written"}
    - flush_lag_seconds: {usage: GAUGE, description: "Lag until the standby reported the WAL flushed"}
    - replay_lag_seconds: {usage: GAUGE, description: "Lag until the standby reported the WAL replayed"}

pg_settings:
  query: |
    SELECT name, CASE setting WHEN 'on' THEN '1' WHEN 'off' THEN '0' ELSE setting END AS setting
      FROM pg_catalog.pg_settings
     WHERE vartype IN ('integer', 'real', 'bool')
     ORDER BY 1
  metrics:
    - name: {usage: LABEL, description: "Setting name"}
    - setting: {usage: GAUGE, description: "Setting value (on/off as 1/0)"}

pg_extensions:
  target_databases: ['*']
  query: |
    SELECT pg_catalog.current_database() AS datname, name AS extname, default_version, installed_version,
           CASE WHEN default_version OPERATOR(pg_catalog.=) installed_version THEN 0 ELSE 1 END AS update_available
      FROM pg_catalog.pg_available_extensions
     WHERE installed_version IS NOT NULL
  metrics:
    - datname: {usage: LABEL, description: "Database name"}
    - extname: {usage: LABEL, description: "Extension name"}
    - default_version: {usage: LABEL, description: "Version ALTER EXTENSION UPDATE would install"}
    - installed_version: {usage: LABEL, description: "Installed version"}
    - update_available: {usage: GAUGE, description: "1 when the installed version differs from the default one"}
`;

/** CNPG injects this one query whatever the configuration (`cnpg_collector_lo_pages`). */
export const alwaysQueriesYaml = String.raw`
collector:
  target_databases: ['*']
  query: |
    SELECT pg_catalog.current_database() AS datname, c.relpages AS lo_pages
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
     WHERE n.nspname OPERATOR(pg_catalog.=) 'pg_catalog' AND c.relname OPERATOR(pg_catalog.=) 'pg_largeobject'
  metrics:
    - datname: {usage: LABEL, description: "Name of the database"}
    - lo_pages: {usage: GAUGE, description: "Estimated number of pages in the pg_largeobject table"}
`;
