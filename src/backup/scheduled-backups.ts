import { quietInterval, type QuietInterval } from '../async/quiet-interval.js';
import { Cron } from 'croner';
import type { Logger } from 'pino';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { isObjectName } from '../cluster/names.js';
import { ConfigError, errorMessage } from '../errors/index.js';
import { electBackupPod } from './backup-objects.js';
import { BackupInProgressError, type BackupService } from './service.js';

/**
 * Files mode's ScheduledBackup: CloudNativePG `ScheduledBackup` manifests (postgresql.cnpg.io/v1) in
 * `<config-dir>/scheduledbackups/*.yaml`, taken on schedule by the instance the target elects (CNPG's rule,
 * electBackupPod). In Kubernetes mode CNPG's operator schedules and pgim reconciles the Backup objects it creates.
 *
 * CNPG's fields: `schedule` (robfig/cron with seconds: exactly 6 fields, or @yearly/@monthly/@weekly/@daily/
 * @hourly), `immediate`, `suspend`, `target`, `method` (barmanObjectStore), `cluster.name`, `backupOwnerReference`.
 * What files mode cannot honour is refused, naming the field: `method` volumeSnapshot or plugin, `online: false`,
 * `onlineConfiguration`, `pluginConfiguration`, `@every` schedules.
 */

export interface ScheduledBackup {
  readonly name: string;
  readonly source: string;
  readonly schedule: string;
  readonly immediate: boolean;
  readonly suspend: boolean;
  readonly target: 'primary' | 'prefer-standby' | undefined;
}

const descriptors = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly']);

/** Croner with robfig/cron's rules as CNPG configures it: seconds first, day-of-month OR day-of-week, UTC. */
export function cronFor(schedule: string, run?: () => void): Cron {
  const pattern = schedule === '@midnight' ? '@daily' : schedule;
  const options = { mode: '6-part' as const, timezone: 'UTC', paused: run === undefined, protect: true };
  return run === undefined ? new Cron(pattern, options) : new Cron(pattern, options, run);
}

const manifestSchema = z.object({
  apiVersion: z.literal('postgresql.cnpg.io/v1', { error: 'must be postgresql.cnpg.io/v1' }),
  kind: z.literal('ScheduledBackup', { error: 'must be ScheduledBackup' }),
  metadata: z.object({ name: z.string().refine(isObjectName, 'must be a Kubernetes object name') }).loose(),
  spec: z.strictObject({
    schedule: z.string({ error: 'is required' }).refine((s) => {
      if (s.startsWith('@')) return descriptors.has(s);
      if (s.trim().split(/\s+/).length !== 6) return false;
      try {
        cronFor(s).stop();
        return true;
      } catch {
        return false;
      }
    }, 'must be a cron schedule with 6 fields, seconds first (e.g. "0 0 3 * * *"), or @yearly, @monthly, @weekly, @daily, @hourly'),
    immediate: z.boolean().default(false),
    suspend: z.boolean().default(false),
    target: z.enum(['primary', 'prefer-standby'], { error: 'must be primary or prefer-standby' }).optional(),
    method: z.literal('barmanObjectStore', { error: 'is not implemented by pgim in files mode (only barmanObjectStore)' }).default('barmanObjectStore'),
    cluster: z.strictObject({ name: z.string() }),
    backupOwnerReference: z.enum(['none', 'self', 'cluster']).optional(),
    online: z.literal(true, { error: 'must be true: Barman Cloud backups are online' }).optional(),
    onlineConfiguration: z.undefined({ error: 'is not implemented by pgim (Barman Cloud decides)' }).optional(),
    pluginConfiguration: z.undefined({ error: 'is not implemented by pgim (no backup plugins)' }).optional(),
  }),
});

/** One manifest; refuses (ConfigError naming the field) what pgim cannot honour or another cluster's manifest. */
export function parseScheduledBackup(text: string, source: string, clusterName: string): ScheduledBackup {
  const doc = parseDocument(text);
  if (doc.errors.length > 0) throw new ConfigError(source, '', `is not valid YAML: ${doc.errors[0]?.message ?? ''}`);
  const parsed = manifestSchema.safeParse(doc.toJS());
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(source, (issue?.path ?? []).join('.'), issue?.message ?? 'is invalid');
  }
  const { metadata, spec } = parsed.data;
  if (spec.cluster.name !== clusterName) throw new ConfigError(source, 'spec.cluster.name', `names cluster "${spec.cluster.name}", not this cluster ("${clusterName}")`);
  return { name: metadata.name, source, schedule: spec.schedule, immediate: spec.immediate, suspend: spec.suspend, target: spec.target };
}

/** CNPG's name for a scheduled Backup: `<scheduledbackup>-<YYYYMMDDhhmmss>`. */
export function scheduledBackupName(name: string, at: Date): string {
  return `${name}-${at.toISOString().replace(/[-:T]/g, '').slice(0, 14)}`;
}

/**
 * Runs the schedules of the latest desired state: one croner job per ScheduledBackup, re-synced at each new desired
 * state and every few seconds while there is one (a changed manifest replaces its job). At each tick the instance the target elects takes the backup;
 * the others do nothing. `immediate` takes one when the schedule is first seen by this process.
 */
export class BackupScheduler {
  private readonly jobs = new Map<string, { key: string; cron: Cron }>();
  private readonly immediateDone = new Set<string>();
  private timer: QuietInterval | undefined;

  constructor(
    private readonly deps: {
      readonly desired: () => { scheduled: readonly ScheduledBackup[]; clusterTarget: string; self: string; primary: string; instances: readonly string[] };
      readonly service: Pick<BackupService, 'takeBackup' | 'store'>;
      readonly logger: Logger;
      readonly now?: () => Date;
    },
  ) {}

  /** Syncs now, and again every `syncMs` while there is a schedule; with none, only `wake()` syncs (no timer). */
  start(syncMs = 5000): void {
    this.sync();
    this.timer = quietInterval(
      () => {
        this.sync();
      },
      syncMs,
      () => this.jobs.size > 0 || this.deps.desired().scheduled.some((s) => !s.suspend),
    );
  }

  /** A new desired state: sync at once (a schedule added is armed now) and re-arm or disarm the re-sync timer. */
  wake(): void {
    if (this.timer === undefined) return;
    this.sync();
    this.timer.wake();
  }

  stop(): void {
    this.timer?.stop();
    this.timer = undefined;
    for (const job of this.jobs.values()) job.cron.stop();
    this.jobs.clear();
  }

  /** The next run of each active schedule (for logs and tests). */
  nextRuns(): Record<string, string | undefined> {
    return Object.fromEntries([...this.jobs].map(([name, job]) => [name, job.cron.nextRun()?.toISOString()]));
  }

  sync(): void {
    const wanted = new Map(this.deps.desired().scheduled.filter((s) => !s.suspend).map((s) => [s.name, s]));
    for (const [name, job] of this.jobs) {
      if (wanted.get(name) === undefined || JSON.stringify(wanted.get(name)) !== job.key) {
        job.cron.stop();
        this.jobs.delete(name);
      }
    }
    for (const [name, scheduled] of wanted) {
      if (this.jobs.has(name)) continue;
      const cron = cronFor(scheduled.schedule, () => void this.tick(scheduled, 'schedule'));
      this.jobs.set(name, { key: JSON.stringify(scheduled), cron });
      this.deps.logger.info({ scheduledBackup: name, schedule: scheduled.schedule, nextRun: cron.nextRun()?.toISOString() }, 'scheduled backup armed');
      if (scheduled.immediate && !this.immediateDone.has(name)) {
        this.immediateDone.add(name);
        void this.tick(scheduled, 'immediate');
      }
    }
  }

  /** One due backup: taken here only when the target elects this instance. Resolves with the backup name, if taken. */
  async tick(scheduled: ScheduledBackup, why: 'schedule' | 'immediate'): Promise<string | undefined> {
    const desired = this.deps.desired();
    const elected = electBackupPod({ name: scheduled.name, creationTimestamp: '', spec: { ...(scheduled.target === undefined ? {} : { target: scheduled.target }) }, status: {} }, desired.clusterTarget, desired);
    if (elected !== desired.self) return undefined;
    if (this.deps.service.store === undefined) {
      this.deps.logger.error({ scheduledBackup: scheduled.name }, 'scheduled backup skipped: spec.backup.barmanObjectStore is not configured');
      return undefined;
    }
    const backupName = scheduledBackupName(scheduled.name, (this.deps.now ?? (() => new Date()))());
    this.deps.logger.info({ scheduledBackup: scheduled.name, backupName, why }, 'taking a scheduled backup');
    try {
      const run = await this.deps.service.takeBackup(backupName);
      return run.phase === 'completed' ? backupName : undefined;
    } catch (err) {
      const level = err instanceof BackupInProgressError ? 'warn' : 'error';
      this.deps.logger[level]({ scheduledBackup: scheduled.name, backupName, error: errorMessage(err) }, 'scheduled backup not taken');
      return undefined;
    }
  }
}
