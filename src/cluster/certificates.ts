import { z } from 'zod';
import { isObjectName } from './names.js';

/**
 * `spec.certificates` of a CloudNativePG Cluster (`api/v1/cluster_types.go` CertificatesConfiguration): the Secrets
 * the instance reads its TLS material from, instead of CNPG's defaults. The instance reads what it is given; issuing
 * a certificate from a CA (`serverCASecret` without `serverTLSSecret`, `clientCASecret` without
 * `replicationTLSSecret`) is the operator's job (or `pgim certs`'s in files mode), into the default Secret names.
 */
const secretName = z.string().refine((s) => s === '' || isObjectName(s), 'must be a Kubernetes object name');

export const certificatesSchema = z
  .object({
    serverCASecret: secretName.optional(),
    serverTLSSecret: secretName.optional(),
    clientCASecret: secretName.optional(),
    replicationTLSSecret: secretName.optional(),
    serverAltDNSNames: z.array(z.string()).optional(),
  })
  .loose();

export type CertificatesSpec = z.infer<typeof certificatesSchema>;

/**
 * Where each piece of TLS material comes from (CNPG's `status.certificates`): `ca.crt` of the server CA (replicas
 * verify the primary with it) and of the client CA (`ssl_ca_file`: client and replica certificates are verified
 * against it), and the `kubernetes.io/tls` Secrets (`tls.crt`, `tls.key`) of the server and of `streaming_replica`.
 */
export interface CertificateSecrets {
  readonly serverCA: string;
  readonly serverTLS: string;
  readonly clientCA: string;
  readonly replicationTLS: string;
  /** Whether any name differs from CNPG's defaults: then every Secret must exist (TLS cannot be off). */
  readonly userProvided: boolean;
}

/**
 * CNPG's GetServerCASecretName & co.: the spec's name, else the one the operator recorded in status, else the default
 * (`<cluster>-ca` for both CAs, `<cluster>-server`, `<cluster>-replication`).
 */
export function resolveCertificateSecrets(spec: CertificatesSpec | undefined, status: CertificatesSpec | undefined, cluster: string): CertificateSecrets {
  const pick = (key: 'serverCASecret' | 'serverTLSSecret' | 'clientCASecret' | 'replicationTLSSecret', fallback: string): string =>
    nonEmpty(spec?.[key]) ?? nonEmpty(status?.[key]) ?? fallback;
  const names = {
    serverCA: pick('serverCASecret', `${cluster}-ca`),
    serverTLS: pick('serverTLSSecret', `${cluster}-server`),
    clientCA: pick('clientCASecret', `${cluster}-ca`),
    replicationTLS: pick('replicationTLSSecret', `${cluster}-replication`),
  };
  const defaults = [`${cluster}-ca`, `${cluster}-server`, `${cluster}-ca`, `${cluster}-replication`];
  return { ...names, userProvided: Object.values(names).some((name, i) => name !== defaults[i]) };
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s;
}
