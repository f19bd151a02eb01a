import { readFile } from 'node:fs/promises';
import { pgDriver } from '../postgres/sql.js';
import type { CertificatePaths } from '../tls/files.js';
import type { Address } from './topology.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits until `address` answers as a primary (not in recovery), asking as streaming_replica with its certificate,
 * the way the demoted instance will connect. Polls every 50 ms; rejects on abort.
 */
export async function waitForPrimary(address: Address, paths: CertificatePaths, signal?: AbortSignal): Promise<void> {
  const ssl = {
    ca: await readFile(paths.serverCa, 'utf8'),
    cert: await readFile(paths.replicationCert, 'utf8'),
    key: await readFile(paths.replicationKey, 'utf8'),
    // verify-ca semantics: the chain is checked; the name is checked by the replica's own conninfo when it can be.
    checkServerIdentity: (): undefined => undefined,
  };
  const { Client } = await pgDriver();
  for (;;) {
    signal?.throwIfAborted();
    const client = new Client({ host: address.host, port: address.port, user: 'streaming_replica', database: 'postgres', ssl, connectionTimeoutMillis: 2000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const { rows } = await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
      if (rows[0]?.r === false) return;
    } catch {
      // not up yet, or still a replica
    } finally {
      await client.end().catch(() => undefined);
    }
    await sleep(50);
  }
}
