import { join } from 'node:path';
import { writeFileAtomic } from '../fs/atomic.js';
import type { TlsMaterial } from './material.js';

/** Where the material lands in the runtime dir (CNPG's `/controller/certificates` names). */
export interface CertificatePaths {
  serverCert: string;
  serverKey: string;
  clientCa: string;
  serverCa: string;
  replicationCert: string;
  replicationKey: string;
}

export function certificatePaths(dir: string): CertificatePaths {
  return {
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    clientCa: join(dir, 'client-ca.crt'),
    serverCa: join(dir, 'server-ca.crt'),
    replicationCert: join(dir, 'streaming_replica.crt'),
    replicationKey: join(dir, 'streaming_replica.key'),
  };
}

/** Writes every file atomically, 0600 (PostgreSQL refuses a key readable by others). True when any changed. */
export async function writeTlsMaterial(dir: string, material: TlsMaterial): Promise<boolean> {
  const paths = certificatePaths(dir);
  const results = await Promise.all([
    writeFileAtomic(paths.serverCert, material.serverCert, 0o600),
    writeFileAtomic(paths.serverKey, material.serverKey, 0o600),
    writeFileAtomic(paths.clientCa, material.clientCaCert, 0o600),
    writeFileAtomic(paths.serverCa, material.serverCaCert, 0o600),
    writeFileAtomic(paths.replicationCert, material.replicationCert, 0o600),
    writeFileAtomic(paths.replicationKey, material.replicationKey, 0o600),
  ]);
  return results.some((r) => r.changed);
}
