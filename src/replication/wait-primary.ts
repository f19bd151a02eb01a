import { readFile } from 'node:fs/promises';
import type pg from 'pg';
import { pgDriver } from '../postgres/sql.js';
import type { CertificatePaths } from '../tls/files.js';
import type { Address } from './topology.js';
import { sleep } from '../async/sleep.js';


export type Ssl = { ca: string; cert: string; key: string; checkServerIdentity: () => undefined };

export async function replicationSsl(paths: CertificatePaths): Promise<Ssl> {
  return {
    ca: await readFile(paths.serverCa, 'utf8'),
    cert: await readFile(paths.replicationCert, 'utf8'),
    key: await readFile(paths.replicationKey, 'utf8'),
    // verify-ca semantics: the chain is checked; the name is checked by the replica's own conninfo when it can be.
    checkServerIdentity: (): undefined => undefined,
  };
}

/**
 * Asks `address`, as streaming_replica with its certificate (the way this instance's WAL receiver connects), for
 * its timeline when it is a primary: undefined while it is unreachable or in recovery (with why, when it failed).
 */
/**
 * One session on another instance as streaming_replica with the replication certificate (how this instance's WAL
 * receiver connects; pg_hba lets it into the `postgres` database), closed after `fn`.
 */
export async function withReplicationSession<T>(address: Address, ssl: Ssl, fn: (client: pg.Client) => Promise<T>, connectTimeoutMs = 2000): Promise<T> {
  const { Client } = await pgDriver();
  const client = new Client({ host: address.host, port: address.port, user: 'streaming_replica', database: 'postgres', ssl, connectionTimeoutMillis: connectTimeoutMs });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function askPrimaryTimeline(address: Address, ssl: Ssl, standbyToo = false): Promise<{ timeline: number | undefined; problem?: string }> {
  try {
    const { rows } = await withReplicationSession(address, ssl, (client) =>
      client.query<{ wal: string | null }>('SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END AS wal'),
    );
    // A replica cluster's designated primary is in recovery: that it answers is all a joining replica needs.
    if (standbyToo && rows[0]?.wal === null) return { timeline: 0 };
    const wal = rows[0]?.wal;
    // A WAL file name starts with the timeline, 8 hex digits.
    return typeof wal === 'string' ? { timeline: parseInt(wal.slice(0, 8), 16) } : { timeline: undefined, problem: 'in recovery' };
  } catch (err) {
    return { timeline: undefined, problem: err instanceof Error ? err.message : String(err) };
  }
}

export async function primaryTimeline(address: Address, paths: CertificatePaths): Promise<number | undefined> {
  return (await askPrimaryTimeline(address, await replicationSsl(paths))).timeline;
}

/**
 * Waits until `address` answers as a primary (not in recovery; or at all, with `standbyToo`: a replica cluster's
 * designated primary); polls every 50 ms; rejects on abort. `onProblem` hears why it does not answer yet, each time
 * the reason changes (a refused certificate, a refused connection).
 */
export async function waitForPrimary(address: Address, paths: CertificatePaths, signal?: AbortSignal, onProblem?: (problem: string) => void, standbyToo = false): Promise<void> {
  const ssl = await replicationSsl(paths);
  let last: string | undefined;
  for (;;) {
    signal?.throwIfAborted();
    const { timeline, problem } = await askPrimaryTimeline(address, ssl, standbyToo);
    if (timeline !== undefined) return;
    if (problem !== undefined && problem !== last) onProblem?.(problem);
    last = problem;
    await sleep(50);
  }
}

/**
 * The primary's tablespaces and their folders, asked as streaming_replica (as pg_rewind connects), so a replica's
 * pg_basebackup can map each folder onto its own. Throws when the primary cannot be asked.
 */
export async function primaryTablespaces(address: Address, paths: CertificatePaths): Promise<{ name: string; location: string }[]> {
  const { rows } = await withReplicationSession(
    address,
    await replicationSsl(paths),
    (client) =>
      client.query<{ name: string; location: string }>(
        "SELECT spcname AS name, pg_catalog.pg_tablespace_location(oid) AS location FROM pg_catalog.pg_tablespace WHERE spcname NOT LIKE 'pg\\_%'",
      ),
    5000,
  );
  return rows;
}
