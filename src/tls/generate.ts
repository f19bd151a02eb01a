import 'reflect-metadata';
import { createPrivateKey, webcrypto, X509Certificate } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { writeFileAtomic } from '../fs/atomic.js';
import { tlsSecretNames } from './material.js';
import { checkCaCertificate, checkCertificatePair } from './validate.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

// @peculiar/x509 signs through WebCrypto; Node's implementation is the one to use.
x509.cryptoProvider.set(webcrypto as never);

const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const day = 24 * 3600 * 1000;

export interface GenerateOptions {
  cluster: string;
  instances: number;
  /** Extra SANs (host names or IPs) for the server certificate. */
  hosts: readonly string[];
  /** The files-mode `secrets/` folder. */
  outDir: string;
  now?: Date;
}

export interface GenerateResult {
  written: string[];
  kept: string[];
}

type Pair = { cert: string; key: string };

async function newKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
}

async function pem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END PRIVATE KEY-----\n`;
}

function serial(): string {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString('hex').replace(/^[89a-f]/, '1');
}

async function readPair(dir: string, certName: string, keyName: string): Promise<Pair | undefined> {
  try {
    return { cert: await readFile(join(dir, certName), 'utf8'), key: await readFile(join(dir, keyName), 'utf8') };
  } catch {
    return undefined;
  }
}

/** Every name an instance of the cluster may be reached by: instance names, the -rw/-ro/-r services, loopback. */
export function serverNames(cluster: string, instances: number, extra: readonly string[]): string[] {
  const names = [`${cluster}-rw`, `${cluster}-ro`, `${cluster}-r`, 'localhost', '127.0.0.1', '::1'];
  for (let i = 1; i <= instances; i++) names.push(`${cluster}-${i}`);
  return [...new Set([...names, ...extra])];
}

function stillGood(pair: Pair, caPem: string, now: Date, names?: readonly string[]): boolean {
  try {
    const facts = checkCertificatePair(pair.cert, pair.key, caPem, now);
    if (facts.notAfter.getTime() - now.getTime() < 30 * day) return false;
    if (!names) return true;
    const cert = new X509Certificate(pair.cert);
    return names.every((n) => (/^[\d.]+$|:/.test(n) ? cert.checkIP(n) : cert.checkHost(n)) !== undefined);
  } catch {
    return false;
  }
}

/**
 * `pgim certs`: a CA, a server certificate for every instance name and `<cluster>-rw`, and the `streaming_replica`
 * client certificate, written as CNPG's Secrets in the files-mode layout (keys 0600). Idempotent: valid material
 * (chains, not expiring within 30 days, covering every name) is kept; only what is missing or unusable is made.
 */
export async function generateClusterCertificates(options: GenerateOptions): Promise<GenerateResult> {
  const now = options.now ?? new Date();
  const names = tlsSecretNames(options.cluster);
  const dirs = { ca: join(options.outDir, names.ca), server: join(options.outDir, names.server), replication: join(options.outDir, names.replication) };
  for (const dir of Object.values(dirs)) await mkdir(dir, { recursive: true, mode: 0o700 });
  const result: GenerateResult = { written: [], kept: [] };

  let ca = await readPair(dirs.ca, 'ca.crt', 'ca.key');
  const caUsable = ca !== undefined && (() => {
    try {
      const facts = checkCaCertificate(ca.cert);
      return facts.notAfter.getTime() - now.getTime() > 30 * day && new X509Certificate(ca.cert).checkPrivateKey(createPrivateKey(ca.key));
    } catch {
      return false;
    }
  })();
  let caKeys: CryptoKeyPair | undefined;
  if (!caUsable) {
    caKeys = await newKeys();
    const caCert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: `CN=${options.cluster}-ca, O=pgim`,
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + 3650 * day),
      keys: caKeys,
      signingAlgorithm: algorithm,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
      ],
    });
    ca = { cert: caCert.toString('pem'), key: await pem(caKeys.privateKey) };
    await writeFileAtomic(join(dirs.ca, 'ca.crt'), ca.cert, 0o600);
    await writeFileAtomic(join(dirs.ca, 'ca.key'), ca.key, 0o600);
    result.written.push(`${names.ca}/ca.crt`, `${names.ca}/ca.key`);
  } else result.kept.push(`${names.ca}/ca.crt`);
  if (!ca) throw new Error('no CA');
  const caPair = ca;
  const signingKey = caKeys?.privateKey ?? (await importKey(caPair.key));
  const issuer = new x509.X509Certificate(caPair.cert);

  const leaf = async (dir: string, secret: string, subject: string, sans: readonly string[] | undefined, clientAuth: boolean): Promise<void> => {
    const existing = await readPair(dir, 'tls.crt', 'tls.key');
    if (existing && stillGood(existing, caPair.cert, now, sans)) {
      result.kept.push(`${secret}/tls.crt`);
      return;
    }
    const keys = await newKeys();
    const extensions: x509.Extension[] = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
      new x509.ExtendedKeyUsageExtension([clientAuth ? x509.ExtendedKeyUsage.clientAuth : x509.ExtendedKeyUsage.serverAuth], false),
      await x509.AuthorityKeyIdentifierExtension.create(issuer, false),
    ];
    if (sans) {
      extensions.push(new x509.SubjectAlternativeNameExtension(sans.map((n) => ({ type: /^[\d.]+$|:/.test(n) ? ('ip' as const) : ('dns' as const), value: n }))));
    }
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject,
      issuer: issuer.subject,
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + 365 * day),
      signingKey,
      publicKey: keys.publicKey,
      signingAlgorithm: algorithm,
      extensions,
    });
    await writeFileAtomic(join(dir, 'tls.crt'), cert.toString('pem'), 0o600);
    await writeFileAtomic(join(dir, 'tls.key'), await pem(keys.privateKey), 0o600);
    result.written.push(`${secret}/tls.crt`, `${secret}/tls.key`);
  };
  await leaf(dirs.server, names.server, `CN=${options.cluster}-rw`, serverNames(options.cluster, options.instances, options.hosts), false);
  await leaf(dirs.replication, names.replication, 'CN=streaming_replica', undefined, true);
  // The CA Secret that pgim reads carries the certificate; the server and replication pairs already have theirs.
  return result;
}

async function importKey(keyPem: string): Promise<CryptoKey> {
  const der = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' });
  return webcrypto.subtle.importKey('pkcs8', der, algorithm, false, ['sign']);
}
