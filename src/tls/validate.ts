import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';

export interface CertificateFacts {
  subject: string;
  commonName: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** sha256 of the DER certificate: changes when the certificate does. */
  fingerprint: string;
}

/** Throws a message naming what is wrong with a certificate/key pair, never printing key material. */
export function checkCertificatePair(certPem: string, keyPem: string, caPem: string, now = new Date()): CertificateFacts {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    throw new Error('certificate is not valid PEM');
  }
  const cas = caCertificates(caPem);
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    throw new Error('private key is not valid PEM');
  }
  if (!cert.checkPrivateKey(key)) throw new Error('private key does not match the certificate');
  if (!cas.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey))) {
    throw new Error(`certificate is not issued by the CA (${cas.map((ca) => ca.subject).join(' or ')})`);
  }
  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  if (now < notBefore) throw new Error(`certificate is not valid before ${notBefore.toISOString()}`);
  if (now > notAfter) throw new Error(`certificate expired on ${notAfter.toISOString()}`);
  return {
    subject: cert.subject,
    commonName: /^CN=(.*)$/m.exec(cert.subject)?.[1] ?? '',
    serial: cert.serialNumber,
    notBefore,
    notAfter,
    fingerprint: createHash('sha256').update(cert.raw).digest('hex'),
  };
}

/**
 * The certificates of a `ca.crt`: one CA, or a bundle of several (the old and the new CA while a CA rotates, as
 * PostgreSQL's ssl_ca_file and libpq's sslrootcert both accept). Throws when a block does not parse or is no CA.
 */
function caCertificates(caPem: string): X509Certificate[] {
  const blocks = caPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error('CA certificate is not valid PEM');
  return blocks.map((block) => {
    let ca: X509Certificate;
    try {
      ca = new X509Certificate(block);
    } catch {
      throw new Error('CA certificate is not valid PEM');
    }
    if (!ca.ca) throw new Error('is not a CA certificate (basicConstraints CA:FALSE)');
    return ca;
  });
}

/** The facts of a `ca.crt` (of its first CA; the fingerprint covers every CA of a bundle). */
export function checkCaCertificate(caPem: string): CertificateFacts {
  const cas = caCertificates(caPem);
  const ca = cas[0] as X509Certificate;
  const fingerprint = createHash('sha256');
  for (const each of cas) fingerprint.update(each.raw);
  return {
    subject: ca.subject,
    commonName: /^CN=(.*)$/m.exec(ca.subject)?.[1] ?? '',
    serial: ca.serialNumber,
    notBefore: new Date(ca.validFrom),
    notAfter: new Date(ca.validTo),
    fingerprint: fingerprint.digest('hex'),
  };
}

/** Whether a server certificate names `host` (DNS or IP SAN): then clients can use sslmode=verify-full. */
export function certificateCovers(certPem: string, host: string): boolean {
  const cert = new X509Certificate(certPem);
  return /^[\d.]+$|:/.test(host) ? cert.checkIP(host) !== undefined : cert.checkHost(host) !== undefined;
}
