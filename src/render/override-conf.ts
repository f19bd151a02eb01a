import { confLine } from './escape.js';

/**
 * override.conf: empty on a primary; on a replica CNPG's streaming settings, sorted. There is no restore_command
 * until backups exist: a replica streams from the primary's HA slot.
 */
export function renderOverrideConf(replication: { primaryConninfo: string; slotName: string | undefined } | undefined): string {
  if (!replication) return '';
  return [
    confLine('primary_conninfo', replication.primaryConninfo),
    // A replica cluster's designated primary streams from another cluster without a slot there (CNPG).
    ...(replication.slotName === undefined ? [] : [confLine('primary_slot_name', replication.slotName)]),
    confLine('recovery_target_timeline', 'latest'),
  ].join('\n').concat('\n');
}
