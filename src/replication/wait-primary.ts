import { readFile } from 'node:fs/promises';
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
async function askPrimaryTimeline(address: Address, ssl: Ssl): Promise<{ timeline: number | undefined; problem?: string }> {
  const { Client } = await pgDriver();
  const client = new Client({ host: address.host, port: address.port, user: 'streaming_replica', database: 'postgres', ssl, connectionTimeoutMillis: 2000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const { rows } = await client.query<{ wal: string | null }>(
      'SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END AS wal',
    );
    const wal = rows[0]?.wal;
    // A WAL file name starts with the timeline, 8 hex digits.
    return typeof wal === 'string' ? { timeline: parseInt(wal.slice(0, 8), 16) } : { timeline: undefined, problem: 'in recovery' };
  } catch (err) {
    return { timeline: undefined, problem: err instanceof Error ? err.message : String(err) };
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function primaryTimeline(address: Address, paths: CertificatePaths): Promise<number | undefined> {
  return (await askPrimaryTimeline(address, await replicationSsl(paths))).timeline;
}

/**
 * Waits until `address` answers as a primary (not in recovery); polls every 50 ms; rejects on abort. `onProblem`
 * hears why it does not answer yet, each time the reason changes (a refused certificate, a refused connection).
 */
export async function waitForPrimary(address: Address, paths: CertificatePaths, signal?: AbortSignal, onProblem?: (problem: string) => void): Promise<void> {
  const ssl = await replicationSsl(paths);
  let last: string | undefined;
  for (;;) {
    signal?.throwIfAborted();
    const { timeline, problem } = await askPrimaryTimeline(address, ssl);
    if (timeline !== undefined) return;
    if (problem !== undefined && problem !== last) onProblem?.(problem);
    last = problem;
    await sleep(50);
  }
}
