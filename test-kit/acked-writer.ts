import type pg from 'pg';

/**
 * A client that commits one row per transaction (`INSERT INTO <table> (id) VALUES ($1)`, autocommit) and records
 * each id PostgreSQL acknowledged. It stops at the first error (the primary died) or when asked. Afterwards,
 * `lostOn` counts the acknowledged ids a new primary lacks: the data-loss measure of the failover tests and B21.
 */
export interface AckedWriter {
  readonly acked: readonly number[];
  /** Resolves once the writer stopped (error or stop()); never rejects. */
  readonly finished: Promise<void>;
  stop(): Promise<void>;
}

export async function startAckedWriter(connect: () => Promise<pg.Client>, table: string, firstId: number): Promise<AckedWriter> {
  const client = await connect();
  client.on('error', () => undefined);
  const acked: number[] = [];
  const stopping = { now: false };
  const finished = (async () => {
    for (let id = firstId; !stopping.now; id++) {
      try {
        await client.query(`INSERT INTO ${table} (id) VALUES ($1)`, [id]);
      } catch {
        break;
      }
      acked.push(id);
    }
    await client.end().catch(() => undefined);
  })();
  return {
    acked,
    finished,
    stop: async () => {
      stopping.now = true;
      await finished;
    },
  };
}

/** How many of `ids` are missing from `table` on the instance `client` is connected to. */
export async function lostOn(client: pg.Client, table: string, ids: readonly number[]): Promise<number> {
  if (ids.length === 0) return 0;
  const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE id = ANY($1::bigint[])`, [ids]);
  return ids.length - Number(rows[0]?.n ?? 0);
}
