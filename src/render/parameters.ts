import { ConfigError } from '../errors/index.js';

/** CloudNativePG's global defaults (`GlobalDefaultSettings`); the log settings are mandatory values instead. */
export const defaultParameters: Readonly<Record<string, string>> = {
  archive_timeout: '5min',
  dynamic_shared_memory_type: 'posix',
  full_page_writes: 'on',
  max_parallel_workers: '32',
  max_replication_slots: '32',
  max_worker_processes: '32',
  shared_memory_type: 'mmap',
  shared_preload_libraries: '',
  ssl_max_protocol_version: 'TLSv1.3',
  ssl_min_protocol_version: 'TLSv1.3',
  wal_keep_size: '512MB',
  wal_level: 'logical',
  wal_log_hints: 'on',
  wal_receiver_timeout: '5s',
  // Beyond CNPG (PostgreSQL's default is 5s): a replica retries a lost primary every second, so after a switchover
  // the former primary streams again in about a second, not five.
  wal_retrieve_retry_interval: '1s',
  wal_sender_timeout: '5s',
};

/** Operator-managed parameters (CNPG `FixedConfigurationParameters`, kind fixed). */
export const fixedParameters: ReadonlySet<string> = new Set([
  'archive_mode', 'cluster_name', 'port', 'primary_conninfo', 'primary_slot_name', 'recovery_target',
  'recovery_target_action', 'recovery_target_inclusive', 'recovery_target_lsn', 'recovery_target_name',
  'recovery_target_time', 'recovery_target_timeline', 'recovery_target_xid', 'restore_command',
  'shared_preload_libraries', 'temp_tablespaces', 'archive_command', 'pg_failover_slots.primary_dsn',
  'pg_failover_slots.standby_slot_names', 'ssl', 'ssl_ca_file', 'ssl_cert_file', 'ssl_crl_file', 'ssl_dh_params_file',
  'ssl_key_file', 'ssl_passphrase_command', 'ssl_passphrase_command_supports_reload', 'ssl_prefer_server_ciphers',
  'synchronous_standby_names', 'synchronized_standby_slots',
]);

/** Parameters no user may set (CNPG kind blocked). */
export const blockedParameters: ReadonlySet<string> = new Set([
  'allow_system_table_mods', 'bonjour', 'bonjour_name', 'config_file', 'data_directory', 'data_sync_retry',
  'event_source', 'external_pid_file', 'hba_file', 'hot_standby', 'ident_file', 'jit_provider', 'listen_addresses',
  'logging_collector', 'unix_socket_directories', 'unix_socket_group', 'unix_socket_permissions',
  'archive_cleanup_command', 'log_destination', 'log_directory', 'log_file_mode', 'log_filename', 'log_rotation_age',
  'log_rotation_size', 'log_truncate_on_rotation', 'promote_trigger_file', 'recovery_end_command',
  'recovery_min_apply_delay', 'restart_after_crash', 'stats_temp_directory', 'syslog_facility', 'syslog_ident',
  'syslog_sequence_numbers', 'syslog_split_messages',
]);

/**
 * The operator-managed parameters CloudNativePG's mutating webhook writes into every Cluster's
 * `spec.postgresql.parameters` (its default configuration, `CnpgConfigurationSettings`, applied by `SetDefaults`),
 * with the values it writes. CNPG's validation accepts a fixed parameter whose value is the one it manages; so does
 * pgim, and ignores it: pgim manages these itself. Any other value is still refused.
 */
export const operatorDefaultParameters: ReadonlyMap<string, string> = new Map([
  ['archive_mode', 'on'],
  ['shared_preload_libraries', ''],
  ['logging_collector', 'on'],
  ['log_destination', 'csvlog'],
  ['log_directory', '/controller/log'],
  ['log_filename', 'postgres'],
  ['log_rotation_age', '0'],
  ['log_rotation_size', '0'],
  ['log_truncate_on_rotation', 'false'],
]);

/** Keys PostgreSQL reads as directives, not settings: `include_if_exists = '/x'` would pull a file in. */
const includeDirectives: ReadonlySet<string> = new Set(['include', 'include_if_exists', 'include_dir']);

/** A GUC name, optionally with one `prefix.` (extension namespace). Anchored without the `m` flag. */
function isParameterName(key: string): boolean {
  const parts = key.split('.');
  return parts.length <= 2 && parts.every((part) => /^[a-zA-Z_][a-zA-Z0-9_$]*$/.test(part));
}

const maxValueBytes = 16 * 1024;

/**
 * Validates user parameters and returns them with lowercased keys (PostgreSQL matches GUC names case-insensitively,
 * so `ARCHIVE_COMMAND` is archive_command). Throws ConfigError naming the key; never echoes a value.
 */
export function validateUserParameters(parameters: Readonly<Record<string, string>>, source: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [key, value] of Object.entries(parameters)) {
    const field = `spec.postgresql.parameters[${JSON.stringify(key)}]`;
    if (!isParameterName(key)) throw new ConfigError(source, field, 'invalid parameter name');
    const name = key.toLowerCase();
    if (includeDirectives.has(name)) throw new ConfigError(source, field, 'include directives are not parameters');
    if (operatorDefaultParameters.get(name) === value && (fixedParameters.has(name) || blockedParameters.has(name))) continue;
    if (fixedParameters.has(name)) throw new ConfigError(source, field, "can't set fixed configuration parameter");
    if (blockedParameters.has(name)) throw new ConfigError(source, field, "can't set blocked configuration parameter");
    if (out.has(name)) throw new ConfigError(source, field, 'is set twice (names are case-insensitive)');
    if (value.includes('\0')) throw new ConfigError(source, field, 'value contains a NUL byte');
    // A lone surrogate would be written as U+FFFD: PostgreSQL would load a value nobody wrote.
    if (!value.isWellFormed()) throw new ConfigError(source, field, 'value is not valid Unicode (lone surrogate)');
    if (Buffer.byteLength(value) > maxValueBytes) throw new ConfigError(source, field, `value is longer than ${maxValueBytes} bytes`);
    out.set(name, value);
  }
  return out;
}
