import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import type { Server } from 'node:http';
import type { SecureContextOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { ControlPlane } from '../controlplane/index.js';
import { errorMessage } from '../errors/index.js';
import { tlsServerOptions } from './http.js';
import type { ObservabilitySpec } from '../cluster/observability.js';

export interface CertificateMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** SHA-256 of certificate and key, to tell a real change from a rewrite of the same bytes. */
  readonly digest: string;
  readonly notAfter: Date;
}

/**
 * Checks a `tls.crt`/`tls.key` pair before it is served: both parse and the key belongs to the certificate. A bad
 * pair is refused with the Secret and key named (never the content), and the previous pair stays in use.
 */
export function checkCertificatePair(secretName: string, cert: Buffer | undefined, key: Buffer | undefined): CertificateMaterial {
  if (!cert) throw new Error(`secret ${secretName}: tls.crt is missing`);
  if (!key) throw new Error(`secret ${secretName}: tls.key is missing`);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new Error(`secret ${secretName}: tls.crt is not a PEM certificate (${(err as { code?: string }).code ?? 'parse error'})`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new Error(`secret ${secretName}: tls.key is not a PEM private key (${(err as { code?: string }).code ?? 'parse error'})`);
  }
  if (!x509.checkPrivateKey(privateKey)) throw new Error(`secret ${secretName}: tls.key does not belong to tls.crt`);
  const digest = createHash('sha256').update(cert).update('\0').update(key).digest('hex');
  return { cert, key, digest, notAfter: new Date(x509.validTo) };
}

/**
 * The status (and metrics) server certificate from the `<cluster>-server` Secret, swapped into the running server
 * with `setSecureContext` whenever the Secret changes: rotation needs no restart and drops no connection.
 */
export class ServerCertificate {
  private current: CertificateMaterial | undefined;
  private readonly servers = new Set<Server>();

  constructor(
    private readonly controlPlane: ControlPlane,
    /** The current observability spec, which names the Secret; call refresh() when it may have changed. */
    private readonly spec: () => ObservabilitySpec,
    private readonly logger: Logger,
  ) {}

  /** What a new TLS server starts with; undefined until the Secret exists (handshakes fail until then). */
  get material(): SecureContextOptions | undefined {
    return this.current ? { cert: this.current.cert, key: this.current.key } : undefined;
  }

  get notAfter(): Date | undefined {
    return this.current?.notAfter;
  }

  attach(server: Server): void {
    this.servers.add(server);
    server.once('close', () => this.servers.delete(server));
  }

  /** Reads the Secret; applies it to every attached server when it changed and is valid. */
  async refresh(): Promise<void> {
    const secretName = this.spec().serverTlsSecretName;
    try {
      const data = await this.controlPlane.readSecret(secretName);
      if (!data) {
        if (!this.current) this.logger.warn({ secret: secretName }, 'server certificate Secret not found; TLS handshakes fail until it exists');
        return;
      }
      const next = checkCertificatePair(secretName, data.get('tls.crt'), data.get('tls.key'));
      if (next.digest === this.current?.digest) return;
      if (next.notAfter.getTime() < Date.now()) this.logger.warn({ secret: secretName, notAfter: next.notAfter.toISOString() }, 'server certificate has expired');
      this.current = next;
      for (const server of this.servers) {
        (server as Server & { setSecureContext: (options: SecureContextOptions) => void }).setSecureContext(tlsServerOptions(this.material));
      }
      this.logger.info({ secret: secretName, notAfter: next.notAfter.toISOString() }, 'server certificate loaded');
    } catch (err) {
      this.logger.error({ secret: secretName, error: errorMessage(err) }, 'server certificate refused; keeping the previous one');
    }
  }
}
