import type { Logger } from 'pino';
import type pg from 'pg';
import { errorMessage } from '../errors/index.js';
import { isExcludedSlot, type SlotSynchronization } from '../cluster/replication-slots.js';
import type { CertificatePaths } from '../tls/files.js';
import { parseLsn } from './synchronous.js';
// pgim's HA slots (`_cnpg_<instance>`): a new primary makes them as it promotes; the replicator leaves them alone.
import { haSlotPrefix, type Address } from './topology.js';
import { replicationSsl, withReplicationSession } from './wait-primary.js';

/** A physical, non-temporary slot as CNPG's replicator lists it (infrastructure.List). */
export interface PhysicalSlot {
  readonly name: string;
  readonly active: boolean;
  /** `restart_lsn` as text; null for a slot that never reserved WAL. */
  readonly restartLsn: string | null;
  /** `xmin` or `catalog_xmin` set (hot_standby_feedback of a former primary's consumer). */
  readonly holdsXmin: boolean;
}

export type SlotAction =
  | { readonly kind: 'create'; readonly slot: string; readonly reserve: boolean }
  | { readonly kind: 'advance'; readonly slot: string; readonly to: string }
  | { readonly kind: 'drop'; readonly slot: string };

const listSlotsQuery = `SELECT slot_name AS name, active, restart_lsn::text AS "restartLsn",
  xmin IS NOT NULL OR catalog_xmin IS NOT NULL AS "holdsXmin"
  FROM pg_catalog.pg_replication_slots WHERE NOT temporary AND slot_type = 'physical' ORDER BY slot_name`;

/**
 * What one pass of CNPG's `synchronizeReplicationSlots` does on a replica, as a list of actions (user slots only:
 * HA slots and the names `excludePatterns` match are never touched):
 * - enabled: a slot of the primary missing here is created (reserving WAL when the primary's has a restart_lsn) and
 *   advanced to the primary's restart_lsn; an existing one is advanced when behind (never backwards: PostgreSQL refuses);
 *   a local slot the primary no longer has, or one holding xmin, is dropped (and created again when the primary has it);
 * - disabled: every such local slot is dropped, as CNPG cleans up when the feature is turned off.
 * An active slot (a consumer streams from this replica) is never dropped.
 */
export function planSlotSync(primary: readonly PhysicalSlot[], local: readonly PhysicalSlot[], config: SlotSynchronization): SlotAction[] {
  const considered = (slot: PhysicalSlot): boolean => !slot.name.startsWith(haSlotPrefix) && !isExcludedSlot(config, slot.name);
  const wanted = new Map(config.enabled ? primary.filter(considered).map((slot) => [slot.name, slot]) : []);
  const actions: SlotAction[] = [];
  const present = new Map<string, PhysicalSlot>();
  for (const slot of local.filter(considered)) {
    const source = wanted.get(slot.name);
    // A copy made before the primary's slot reserved WAL cannot be advanced: it is made again, reserving.
    const stale = source === undefined || slot.holdsXmin || (slot.restartLsn === null && source.restartLsn !== null);
    if (stale && !slot.active) actions.push({ kind: 'drop', slot: slot.name });
    else present.set(slot.name, slot);
  }
  for (const source of wanted.values()) {
    const copy = present.get(source.name);
    if (copy === undefined) actions.push({ kind: 'create', slot: source.name, reserve: source.restartLsn !== null });
    if (source.restartLsn === null) continue;
    if (copy === undefined || (copy.restartLsn !== null && parseLsn(copy.restartLsn) < parseLsn(source.restartLsn))) {
      actions.push({ kind: 'advance', slot: source.name, to: source.restartLsn });
    }
  }
  return actions;
}

/**
 * Advances only a slot still behind `to` (a copy created with WAL reserved may start ahead of the primary's slot);
 * on a standby PostgreSQL moves it at most to the replayed position.
 */
const advanceQuery =
  'SELECT pg_catalog.pg_replication_slot_advance(slot_name, $2::pg_lsn) FROM pg_catalog.pg_replication_slots WHERE slot_name = $1 AND restart_lsn < $2::pg_lsn';

async function apply(client: pg.Client, action: SlotAction): Promise<void> {
  if (action.kind === 'create') await client.query('SELECT pg_catalog.pg_create_physical_replication_slot($1, $2)', [action.slot, action.reserve]);
  else if (action.kind === 'advance') await client.query(advanceQuery, [action.slot, action.to]);
  else await client.query('SELECT pg_catalog.pg_drop_replication_slot($1)', [action.slot]);
}

export interface SlotReplicatorOptions {
  /** This instance's held superuser session (PostgresInstance.withHeldSession). */
  withSession: <T>(fn: (client: pg.Client) => Promise<T>) => Promise<T>;
  /**
   * Where the primary is, while this instance runs as a replica that should follow its slots (postgres accepting,
   * not the primary or the target primary, not fenced); undefined otherwise.
   */
  primary: () => { readonly address: Address; readonly certificates: CertificatePaths } | undefined;
  config: () => SlotSynchronization;
  logger: Logger;
}

/**
 * CNPG's slot Replicator: every `updateInterval` seconds on a replica, one pass of planSlotSync between the primary's
 * slots (read as streaming_replica, as CNPG's primary pool does) and this instance's. A failed action is logged and
 * the others still run; the next pass retries.
 */
export class SlotReplicator {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;
  private again = false;

  constructor(private readonly options: SlotReplicatorOptions) {}

  start(): this {
    this.schedule(this.options.config().updateIntervalSeconds * 1000);
    return this;
  }

  /** A pass soon (the configuration changed, or this instance became a replica), then the interval again. */
  nudge(): void {
    this.schedule(100);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** One pass now: the actions taken (empty when this instance is no replica or nothing differs). */
  async pass(): Promise<SlotAction[]> {
    const primary = this.options.primary();
    if (primary === undefined) return [];
    const config = this.options.config();
    const { withSession, logger } = this.options;
    const local = await withSession(async (client) => {
      const { rows } = await client.query<{ r: boolean }>('SELECT pg_catalog.pg_is_in_recovery() AS r');
      // Still a primary in fact (a demotion not done yet): its slots are the originals.
      return rows[0]?.r === true ? (await client.query<PhysicalSlot>(listSlotsQuery)).rows : undefined;
    });
    if (local === undefined) return [];
    const primarySlots = config.enabled
      ? await withReplicationSession(primary.address, await replicationSsl(primary.certificates), async (client) => (await client.query<PhysicalSlot>(listSlotsQuery)).rows)
      : [];
    const actions = planSlotSync(primarySlots, local, config);
    const done: SlotAction[] = [];
    for (const action of actions) {
      try {
        await withSession((client) => apply(client, action));
        done.push(action);
      } catch (err) {
        logger.warn({ action: action.kind, slot: action.slot, error: errorMessage(err) }, 'could not synchronize a replication slot with the primary');
      }
    }
    const changed = done.filter((action) => action.kind !== 'advance');
    if (changed.length > 0) logger.info({ slots: changed.map((a) => `${a.kind} ${a.slot}`) }, "replication slots follow the primary's");
    return done;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.running !== undefined) {
        // A pass is under way: the next one follows it at once (it reads the configuration again).
        this.again = true;
        return;
      }
      this.running = this.pass()
        .then(
          () => undefined,
          (err: unknown) => {
            this.options.logger.warn({ error: errorMessage(err) }, "could not synchronize the replication slots with the primary's");
          },
        )
        .finally(() => {
          this.running = undefined;
          const again = this.again;
          this.again = false;
          if (this.timer === undefined) this.schedule(again ? 0 : this.options.config().updateIntervalSeconds * 1000);
        });
    }, delayMs);
    this.timer.unref();
  }
}
