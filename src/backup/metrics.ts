import { Gauge, type Registry } from 'prom-client';
import type { BackupService } from './service.js';

/** Unix seconds of an RFC 3339 time; 0 when unset (CNPG's setTimestampMetric). */
function seconds(value: string | undefined): number {
  if (value === undefined || value === '') return 0;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? 0 : ms / 1000;
}

/**
 * CNPG's backup gauges (`pg_collector.go`), fed from this instance's catalog and backup outcomes. CNPG reads them from
 * the Cluster status; pgim has the same values first hand, in files mode too.
 */
export function registerBackupMetrics(registry: Registry, backups: BackupService): void {
  const families: [string, string, (s: ReturnType<BackupService['snapshot']>) => string | undefined][] = [
    ['cnpg_collector_first_recoverability_point', 'The first point of recoverability for the cluster as a unix timestamp (Deprecated)', (s) => s.firstRecoverabilityPoint],
    ['cnpg_collector_last_available_backup_timestamp', 'The last available backup as a unix timestamp (Deprecated)', (s) => s.lastSuccessfulBackup],
    ['cnpg_collector_last_failed_backup_timestamp', 'The last failed backup as a unix timestamp (Deprecated)', (s) => s.lastFailedBackup],
  ];
  for (const [name, help, pick] of families) {
    // A family another module registered first (at 0) is fed instead of registered twice.
    const existing = registry.getSingleMetric(name);
    if (existing !== undefined) registry.removeSingleMetric(name);
    registry.registerMetric(
      new Gauge({
        name,
        help,
        registers: [],
        collect() {
          this.set(seconds(pick(backups.snapshot())));
        },
      }),
    );
  }
}
