import type pg from 'pg';

export interface StandbyWatchOptions {
  /** The instance's held session (PostgresInstance.withHeldSession): released before any stop, so it never holds up a smart shutdown. */
  withSession: <T>(fn: (client: pg.Client) => Promise<T>) => Promise<T>;
  /** Whether to look now: this instance is a primary that accepts connections and synchronous replication is on. */
  active: () => boolean;
  /** The sorted names of the standbys streaming now, whenever the set changes. */
  onChange: (streaming: readonly string[]) => void;
  intervalMs?: number;
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
    }, options.intervalMs ?? 1000);
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
