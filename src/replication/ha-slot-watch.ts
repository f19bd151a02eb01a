import type pg from 'pg';
import { quietInterval, type QuietInterval } from '../async/quiet-interval.js';

export interface HaSlotWatchOptions {
  /** The instance's held session (PostgresInstance.withHeldSession): released before any stop. */
  withSession: <T>(fn: (client: pg.Client) => Promise<T>) => Promise<T>;
  /** The HA slots this instance must hold now (`_cnpg_<name>` of every other instance); empty when it is no primary. */
  wanted: () => readonly string[];
  /** Some wanted slots are missing: the caller reconciles (one pass creates them). */
  onMissing: (missing: readonly string[]) => void;
  intervalMs?: number;
  /**
   * Whether there can be HA slots to keep (a primary of more than one instance, by the desired state): otherwise the
   * watch sleeps, with no timer, until `wake()` (the daemon calls it after each new desired state).
   */
  applies?: () => boolean;
}

/** CNPG's ReplicationSlots.UpdateInterval default is 30 s; a replica without its slot cannot stream at all. */
export const haSlotCheckIntervalMs = 10_000;

const existingQuery = "SELECT slot_name FROM pg_catalog.pg_replication_slots WHERE slot_type = 'physical' AND slot_name = ANY($1::text[])";

/**
 * Checks, every `intervalMs` over the held session, that the primary still has the HA slot of each other instance.
 * A pass creates them when the desired state changes, but a slot can also go while nothing in the spec changes (an
 * administrator's or a tool's `pg_drop_replication_slot`, a restored or rewound PGDATA): its replica then fails
 * every streaming attempt ("replication slot ... does not exist") until the next configuration change. CNPG's
 * instance manager re-creates them on its regular reconciles; this is pgim's equivalent, one cheap query per tick
 * and only on a primary with replicas.
 */
export function watchHaSlots(options: HaSlotWatchOptions): QuietInterval {
  const tick = async (): Promise<void> => {
    const wanted = options.wanted();
    if (wanted.length === 0) return;
    try {
      const { rows } = await options.withSession((client) => client.query<{ slot_name: string }>(existingQuery, [wanted]));
      const present = new Set(rows.map((r) => r.slot_name));
      const missing = wanted.filter((slot) => !present.has(slot));
      if (missing.length > 0) options.onMissing(missing);
    } catch {
      // Postgres restarting or stopping: the next tick asks again.
    }
  };
  return quietInterval(tick, options.intervalMs ?? haSlotCheckIntervalMs, options.applies ?? (() => true));
}
