import { confLine } from './escape.js';

/**
 * override.conf: empty on a primary; on a replica CNPG's streaming settings, sorted. With an object store
 * (`spec.backup.barmanObjectStore`) a replica also has restore_command = `pgim wal-restore`: when it cannot stream
 * (the primary is away, or has removed the WAL it needs) it catches up from the archive, then streams again.
 */
export function renderOverrideConf(replication: { primaryConninfo: string; slotName: string | undefined; restoreCommand?: string | undefined } | undefined): string {
  if (!replication) return '';
  return [
    confLine('primary_conninfo', replication.primaryConninfo),
    // A replica cluster's designated primary streams from another cluster without a slot there (CNPG).
    ...(replication.slotName === undefined ? [] : [confLine('primary_slot_name', replication.slotName)]),
    confLine('recovery_target_timeline', 'latest'),
    ...(replication.restoreCommand === undefined ? [] : [confLine('restore_command', replication.restoreCommand)]),
  ].join('\n').concat('\n');
}
