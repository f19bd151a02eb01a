import { confLine } from './escape.js';

/**
 * override.conf: on a replica CNPG's streaming settings, sorted; on a primary only `recovery_target_timeline`. That
 * one is a restart-only setting: were it rendered on replicas only, a promotion would drop it from the file and
 * PostgreSQL would flag a pending restart on the new primary (CNPG's operator then restarts the primary in place
 * right after every switchover). 'latest' is also PostgreSQL's default, so it changes nothing on a primary. With an
 * object store (`spec.backup.barmanObjectStore`) a replica also has restore_command = `pgim wal-restore`: when it
 * cannot stream (the primary is away, or has removed the WAL it needs) it catches up from the archive, then streams
 * again.
 */
export function renderOverrideConf(replication: { primaryConninfo: string; slotName: string | undefined; restoreCommand?: string | undefined } | undefined): string {
  const timeline = confLine('recovery_target_timeline', 'latest');
  if (!replication) return `${timeline}\n`;
  return [
    confLine('primary_conninfo', replication.primaryConninfo),
    // A replica cluster's designated primary streams from another cluster without a slot there (CNPG).
    ...(replication.slotName === undefined ? [] : [confLine('primary_slot_name', replication.slotName)]),
    timeline,
    ...(replication.restoreCommand === undefined ? [] : [confLine('restore_command', replication.restoreCommand)]),
  ].join('\n').concat('\n');
}
