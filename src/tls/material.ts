import type { CertificateSecrets } from '../cluster/certificates.js';
import type { ControlPlane, ObjectData } from '../controlplane/index.js';
import { ConfigError } from '../errors/index.js';
import { checkCaCertificate, checkCertificatePair, type CertificateFacts } from './validate.js';

/** CNPG's Secret names: `<cluster>-server`, `<cluster>-ca`, `<cluster>-replication`. */
export function tlsSecretNames(cluster: string): { server: string; ca: string; replication: string } {
  return { server: `${cluster}-server`, ca: `${cluster}-ca`, replication: `${cluster}-replication` };
}

export interface TlsMaterial {
  serverCert: string;
  serverKey: string;
  /** `ca.crt` of the server CA: replicas verify the primary's certificate with it (`sslrootcert`). */
  serverCaCert: string;
  /** `ca.crt` of the client CA: `ssl_ca_file`, against which client and replica certificates are verified. */
  clientCaCert: string;
  replicationCert: string;
  replicationKey: string;
  facts: { secret: string; facts: CertificateFacts }[];
  /** Changes whenever any certificate does: part of the render hash, so a rotation triggers a confirmed reload. */
  fingerprint: string;
}

function key(data: ObjectData, secret: string, name: string): string {
  const bytes = data.get(name);
  if (bytes === undefined) throw new ConfigError(`secret ${secret}`, name, 'key is missing');
  return bytes.toString('utf8');
}

function check(secret: string, field: string, fn: () => CertificateFacts): CertificateFacts {
  try {
    return fn();
  } catch (err) {
    throw new ConfigError(`secret ${secret}`, field, (err as Error).message);
  }
}

/**
 * The cluster's TLS material from its Secrets (CNPG's defaults, or the user's from `spec.certificates`), validated
 * before use: PEM parses, keys match, the server certificate chains to the server CA and the replication certificate
 * to the client CA, none expired, the replication certificate's CN is `streaming_replica`. Undefined when the cluster
 * has none of its default Secrets (TLS off); ConfigError when they exist but cannot be used, or when the user named
 * Secrets that are missing.
 */
export async function loadTlsMaterial(controlPlane: ControlPlane, names: CertificateSecrets, now = new Date()): Promise<TlsMaterial | undefined> {
  const distinct = [...new Set([names.serverCA, names.serverTLS, names.clientCA, names.replicationTLS])];
  const read = new Map(await Promise.all(distinct.map(async (name) => [name, await controlPlane.readSecret(name)] as const)));
  if (!names.userProvided && [...read.values()].every((data) => data === undefined)) return undefined;
  const secret = (name: string): ObjectData => {
    const data = read.get(name);
    if (data !== undefined) return data;
    throw new ConfigError(`secret ${name}`, '', names.userProvided ? 'not found (named by spec.certificates)' : 'not found (the other TLS Secrets exist)');
  };
  const serverCaCert = key(secret(names.serverCA), names.serverCA, 'ca.crt');
  const clientCaCert = key(secret(names.clientCA), names.clientCA, 'ca.crt');
  const server = secret(names.serverTLS);
  const replication = secret(names.replicationTLS);
  const material = {
    serverCert: key(server, names.serverTLS, 'tls.crt'),
    serverKey: key(server, names.serverTLS, 'tls.key'),
    serverCaCert,
    clientCaCert,
    replicationCert: key(replication, names.replicationTLS, 'tls.crt'),
    replicationKey: key(replication, names.replicationTLS, 'tls.key'),
  };
  const facts = new Map<string, CertificateFacts>();
  facts.set(names.serverCA, check(names.serverCA, 'ca.crt', () => checkCaCertificate(serverCaCert)));
  facts.set(names.clientCA, check(names.clientCA, 'ca.crt', () => checkCaCertificate(clientCaCert)));
  const serverFacts = check(names.serverTLS, 'tls.crt', () => checkCertificatePair(material.serverCert, material.serverKey, serverCaCert, now));
  const replicationFacts = check(names.replicationTLS, 'tls.crt', () => checkCertificatePair(material.replicationCert, material.replicationKey, clientCaCert, now));
  if (replicationFacts.commonName !== 'streaming_replica') {
    throw new ConfigError(`secret ${names.replicationTLS}`, 'tls.crt', `CN must be streaming_replica, not "${replicationFacts.commonName}"`);
  }
  facts.set(names.serverTLS, serverFacts);
  facts.set(names.replicationTLS, replicationFacts);
  const list = [...facts].map(([name, each]) => ({ secret: name, facts: each }));
  return { ...material, facts: list, fingerprint: list.map((f) => f.facts.fingerprint).join(':') };
}
