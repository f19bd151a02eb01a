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
  caCert: string;
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

/**
 * The cluster's TLS material from its Secrets, validated before use: PEM parses, keys match, both certificates
 * chain to the CA, none expired, the replication certificate's CN is `streaming_replica`. Undefined when the
 * cluster has no certificates at all (TLS off); ConfigError when they exist but cannot be used.
 */
export async function loadTlsMaterial(controlPlane: ControlPlane, cluster: string, now = new Date()): Promise<TlsMaterial | undefined> {
  const names = tlsSecretNames(cluster);
  const [server, ca, replication] = await Promise.all([
    controlPlane.readSecret(names.server),
    controlPlane.readSecret(names.ca),
    controlPlane.readSecret(names.replication),
  ]);
  if (!server && !ca && !replication) return undefined;
  if (!server) throw new ConfigError(`secret ${names.server}`, '', 'not found (the other TLS Secrets exist)');
  if (!ca) throw new ConfigError(`secret ${names.ca}`, '', 'not found (the other TLS Secrets exist)');
  if (!replication) throw new ConfigError(`secret ${names.replication}`, '', 'not found (the other TLS Secrets exist)');
  const caCert = key(ca, names.ca, 'ca.crt');
  const material = {
    serverCert: key(server, names.server, 'tls.crt'),
    serverKey: key(server, names.server, 'tls.key'),
    caCert,
    replicationCert: key(replication, names.replication, 'tls.crt'),
    replicationKey: key(replication, names.replication, 'tls.key'),
  };
  const check = (secret: string, fn: () => CertificateFacts): CertificateFacts => {
    try {
      return fn();
    } catch (err) {
      throw new ConfigError(`secret ${secret}`, 'tls.crt', (err as Error).message);
    }
  };
  const caFacts = check(names.ca, () => checkCaCertificate(caCert));
  const serverFacts = check(names.server, () => checkCertificatePair(material.serverCert, material.serverKey, caCert, now));
  const replicationFacts = check(names.replication, () => checkCertificatePair(material.replicationCert, material.replicationKey, caCert, now));
  if (replicationFacts.commonName !== 'streaming_replica') {
    throw new ConfigError(`secret ${names.replication}`, 'tls.crt', `CN must be streaming_replica, not "${replicationFacts.commonName}"`);
  }
  const facts = [
    { secret: names.ca, facts: caFacts },
    { secret: names.server, facts: serverFacts },
    { secret: names.replication, facts: replicationFacts },
  ];
  return { ...material, facts, fingerprint: facts.map((f) => f.facts.fingerprint).join(':') };
}
