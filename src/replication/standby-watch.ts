import type pg from 'pg';
import { quietInterval, type QuietInterval } from '../async/quiet-interval.js';

export interface StandbyWatchOptions {
  /** The instance's held session (PostgresInstance.withHeldSession): released before any stop, so it never holds up a smart shutdown. */
  withSession: <T>(fn: (client: pg.Client) => Promise<T>) => Promise<T>;
  /** Whether to look now: this instance is a primary that accepts connections and synchronous replication is on. */
  active: () => boolean;
  /** The sorted names of the standbys streaming now, whenever the set changes. */
  onChange: (streaming: readonly string[]) => void;
  intervalMs?: number;
  /**
   * Whether the configuration asks for the watch at all (synchronous replication on). While it does not, the watch
   * sleeps (no timer) until `wake()`, which the daemon calls after each new desired state: one wake-up a second, then
   * every 5 s, was a fifth of an idle pgim's timer wake-ups. A promotion or a restart does not change it, so they
   * are seen within `intervalMs` as before.
   */
  enabled?: () => boolean;
}

/** The primary's streaming standbys (their application names are instance names). */
const streamingQuery = "SELECT application_name FROM pg_catalog.pg_stat_replication WHERE state = 'streaming' ORDER BY 1";

/**
 * Follows which standbys stream from this primary, once a second, over pgim's held session: the input of
 * `synchronous_standby_names` (the streaming standbys first, and under `dataDurability: preferred` only them). A
 * standby that joins, leaves, fails or comes back changes the set; the caller renders and reloads.
 */
export function watchStreamingStandbys(options: StandbyWatchOptions): QuietInterval {
  let last = '';
  const tick = async (): Promise<void> => {
    if (!options.active()) {
      if (last !== '') options.onChange([]);
      last = '';
      return;
    }
    try {
      const { rows } = await options.withSession((client) => client.query<{ application_name: string }>(streamingQuery));
      const names = rows.map((r) => r.application_name);
      const key = names.join('\0');
      if (key !== last) {
        last = key;
        options.onChange(names);
      }
    } catch {
      // Postgres restarting or stopping: the next tick asks again.
    }
  };
  // Asleep while disabled; `last` non-empty (standbys reported) still gets its one tick that reports none.
  return quietInterval(tick, options.intervalMs ?? 1000, () => options.enabled?.() !== false || last !== '');
}
