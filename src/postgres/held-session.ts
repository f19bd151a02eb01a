import type pg from 'pg';
import { connectLocal, type LocalConnection } from './sql.js';

/**
 * One superuser session kept open for the short periodic probes (the restart check every 5 s, the divergence watch
 * every 3 s on a replica, the synchronous standby watch): a new session costs a backend fork, peer authentication and node-postgres's
 * start-up, most of pgim's idle CPU before; a held one costs a round trip. Any error drops it; a probe that failed on
 * a session it reused is retried once on a new one (a restarted postmaster, a terminated backend: the probes are
 * read-only, so a retry is safe). `release()` closes it before pgim stops postgres, so a
 * smart shutdown never waits for pgim's own session, and keeps it closed until `resume()` (the next start).
 *
 * Only for short read-only queries: node-postgres queues the queries of concurrent callers on the one connection, so
 * a long statement here would delay every probe behind it.
 */
export class HeldSession {
  private client: Promise<pg.Client> | undefined;
  private released = false;

  constructor(private readonly target: LocalConnection) {}

  async run<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const reused = this.client !== undefined;
    try {
      return await this.once(fn);
    } catch (err) {
      // A session held across a postmaster restart or a terminated backend fails once: retry on a new one.
      if (!reused || this.released) throw err;
      return this.once(fn);
    }
  }

  private async once<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    if (this.released) throw new Error('postgres is stopping: no new session');
    const opening = (this.client ??= connectLocal(this.target));
    let client: pg.Client;
    try {
      client = await opening;
    } catch (err) {
      if (this.client === opening) this.client = undefined;
      throw err;
    }
    try {
      return await fn(client);
    } catch (err) {
      if (this.client === opening) void this.drop();
      throw err;
    }
  }

  /** Closes the session and opens none until `resume()`. */
  release(): Promise<void> {
    this.released = true;
    return this.drop();
  }

  resume(): void {
    this.released = false;
  }

  private async drop(): Promise<void> {
    const opening = this.client;
    this.client = undefined;
    await opening?.then((client) => client.end()).catch(() => undefined);
  }
}
