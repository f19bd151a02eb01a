import type pg from 'pg';

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
   * looks every `idleIntervalMs` instead: one wake-up a second was a fifth of an idle pgim's timer wake-ups. A
   * promotion or a restart does not change it, so they are seen within `intervalMs` as before.
   */
  enabled?: () => boolean;
  idleIntervalMs?: number;
}

/** The primary's streaming standbys (their application names are instance names). */
const streamingQuery = "SELECT application_name FROM pg_catalog.pg_stat_replication WHERE state = 'streaming' ORDER BY 1";

/**
 * Follows which standbys stream from this primary, once a second, over pgim's held session: the input of
 * `synchronous_standby_names` (the streaming standbys first, and under `dataDurability: preferred` only them). A
 * standby that joins, leaves, fails or comes back changes the set; the caller renders and reloads.
 */
export function watchStreamingStandbys(options: StandbyWatchOptions): { stop: () => void } {
  let last = '';
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
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
  const loop = (): void => {
    timer = setTimeout(() => {
      void tick().finally(() => {
        if (!stopped) loop();
      });
    }, options.enabled?.() === false ? (options.idleIntervalMs ?? 5000) : (options.intervalMs ?? 1000));
    timer.unref();
  };
  loop();
  return {
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
