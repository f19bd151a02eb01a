import { X509Certificate } from 'node:crypto';
import { readFile, readdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { generateClusterCertificates } from '../src/tls/generate.js';
import { handFileToServiceUser, serviceDirectory } from './env.js';
import type { ProcessRegistry } from './proc.js';

/** A server certificate and its key (PEM), with the serial a client sees. */
export interface ServerPair {
  cert: string;
  key: string;
  serial: string;
}

/** Serials as hex without leading zeros, upper case: node's, OpenSSL's and X509Certificate's spellings agree. */
function normalSerial(serial: string): string {
  return serial.replace(/^0+/, '').toUpperCase();
}

export function serialOf(pem: string): string {
  return normalSerial(new X509Certificate(pem).serialNumber);
}

/**
 * One CA for a whole benchmark and the server certificates it signs, made by the code behind `pgim certs`
 * (ECDSA P-256; the server certificate names localhost and 127.0.0.1). A new server pair comes from the same CA, so
 * a client that verifies the server keeps trusting it across a rotation.
 */
export class BenchCertificates {
  private constructor(
    private readonly secretsDir: string,
    readonly cluster: string,
    /** The CA certificate (PEM) every client verifies with. */
    readonly caCert: string,
    private readonly hosts: readonly string[],
  ) {}

  /**
   * `pgim certs --cluster CLUSTER --instances 1 --out DIR/secrets`, in process; `hosts`: more names for the server
   * certificate (a system that is not on 127.0.0.1).
   */
  static async create(dir: string, cluster: string, hosts: readonly string[] = []): Promise<BenchCertificates> {
    const secretsDir = join(dir, 'secrets');
    await generateClusterCertificates({ cluster, instances: 1, hosts, outDir: secretsDir });
    const caCert = await readFile(join(secretsDir, `${cluster}-ca`, 'ca.crt'), 'utf8');
    return new BenchCertificates(secretsDir, cluster, caCert, hosts);
  }

  /** The CA's key (an operator's CA Secret holds it too). */
  caKey(): Promise<string> {
    return readFile(join(this.secretFolder('ca'), 'ca.key'), 'utf8');
  }

  /** The generated Secret folder `<cluster>-<suffix>` (files-mode layout: one file per key). */
  secretFolder(suffix: 'ca' | 'server' | 'replication'): string {
    return join(this.secretsDir, `${this.cluster}-${suffix}`);
  }

  async replicationPair(): Promise<{ cert: string; key: string }> {
    const dir = this.secretFolder('replication');
    return { cert: await readFile(join(dir, 'tls.crt'), 'utf8'), key: await readFile(join(dir, 'tls.key'), 'utf8') };
  }

  /** The server pair generated last. */
  async serverPair(): Promise<ServerPair> {
    const dir = this.secretFolder('server');
    const cert = await readFile(join(dir, 'tls.crt'), 'utf8');
    return { cert, key: await readFile(join(dir, 'tls.key'), 'utf8'), serial: serialOf(cert) };
  }

  /** A new server certificate and key (new serial) from the same CA: `pgim certs` keeps the CA, makes what is missing. */
  async newServerPair(): Promise<ServerPair> {
    await rm(this.secretFolder('server'), { recursive: true, force: true });
    await generateClusterCertificates({ cluster: this.cluster, instances: 1, hosts: this.hosts, outDir: this.secretsDir });
    return this.serverPair();
  }
}

/**
 * A Secret volume as the kubelet writes it: `key -> ..data/key`, `..data -> ..<version>`, the files in the version
 * folder. A new version is written next to the old one and `..data` is renamed over in one rename(2), so a reader
 * sees either every old key or every new one (a certificate never meets another certificate's key). The files are
 * 0600 and belong to the service account (PostgreSQL refuses a key anyone else may read).
 */
export class ProjectedSecretFolder {
  private version = 0;

  private constructor(readonly dir: string) {}

  static async create(dir: string, files: Readonly<Record<string, string>>): Promise<ProjectedSecretFolder> {
    await serviceDirectory(dir);
    const folder = new ProjectedSecretFolder(dir);
    const version = await folder.writeVersion(files);
    await symlink(version, join(dir, '..data'));
    for (const name of Object.keys(files)) await symlink(`..data/${name}`, join(dir, name));
    return folder;
  }

  /** Where PostgreSQL (or pgim) reads a key: the stable symlink. */
  path(name: string): string {
    return join(this.dir, name);
  }

  private async writeVersion(files: Readonly<Record<string, string>>): Promise<string> {
    this.version += 1;
    const name = `..v${String(this.version)}`;
    await writeSecretFolder(join(this.dir, name), files);
    return name;
  }

  /**
   * Writes the new version and a `..data_tmp` link to it (the slow part, untimed); the returned function makes the
   * change visible: one rename of `..data_tmp` over `..data`. Older versions are removed first (as the kubelet does
   * after the swap, only off the clock).
   */
  async stage(files: Readonly<Record<string, string>>): Promise<() => Promise<void>> {
    const current = `..v${String(this.version)}`;
    for (const entry of await readdir(this.dir)) {
      if (/^\.\.v\d+$/.test(entry) && entry !== current) await rm(join(this.dir, entry), { recursive: true, force: true });
    }
    const version = await this.writeVersion(files);
    const temp = join(this.dir, '..data_tmp');
    await rm(temp, { force: true });
    await symlink(version, temp);
    return () => rename(temp, join(this.dir, '..data'));
  }
}

/** The SSLRequest code a PostgreSQL client sends before its TLS handshake (1234 5679). */
const sslRequest = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

/**
 * The serial of the certificate PostgreSQL on 127.0.0.1:`port` serves to a new connection: SSLRequest, `S`, a TLS
 * handshake that verifies the chain against `ca` and 127.0.0.1 against the certificate's names (what a
 * `sslmode=verify-full` client checks), then a clean close before any startup packet (PostgreSQL logs nothing for
 * that). Rejects when the server refuses TLS or the certificate does not verify.
 */
export function servedSerial(port: number, ca: string, timeoutMs = 1_000, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port });
    const timer = setTimeout(() => {
      fail(new Error(`no TLS handshake with ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    function fail(err: Error): void {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    }
    socket.once('error', fail);
    socket.once('connect', () => socket.write(sslRequest));
    socket.once('data', (answer: Buffer) => {
      socket.pause();
      if (answer.length !== 1 || answer[0] !== 0x53) {
        fail(new Error(`${host}:${port} refused TLS (answered ${JSON.stringify(answer.toString('latin1'))})`));
        return;
      }
      const secure = tlsConnect({ socket, host, ca, minVersion: 'TLSv1.3' }, () => {
        const serial = secure.getPeerCertificate().serialNumber;
        clearTimeout(timer);
        secure.end();
        resolve(normalSerial(serial));
      });
      secure.once('error', fail);
    });
  });
}

/**
 * The serial `openssl s_client -starttls postgres` is served (the plan's definition of the check): one spawn,
 * so the harness uses it to confirm what its own handshake poll saw, off the clock.
 */
export async function opensslServedSerial(processes: ProcessRegistry, port: number, host = '127.0.0.1'): Promise<string> {
  const out = await processes.output('openssl s_client', 'openssl', ['s_client', '-starttls', 'postgres', '-connect', `${host}:${String(port)}`]);
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(out)?.[0];
  if (pem === undefined) throw new Error(`openssl s_client -starttls postgres on port ${port}: no certificate in its output`);
  return serialOf(pem);
}

/** A files-mode Secret folder with plain files (0600, the service account's): the CA and replication Secrets. */
export async function writeSecretFolder(dir: string, files: Readonly<Record<string, string>>): Promise<void> {
  await serviceDirectory(dir);
  for (const [key, text] of Object.entries(files)) {
    await writeFile(join(dir, key), text, { mode: 0o600 });
    await handFileToServiceUser(join(dir, key));
  }
}
