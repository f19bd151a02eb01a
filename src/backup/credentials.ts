import type { ControlPlane } from '../controlplane/index.js';
import { ConfigError } from '../errors/index.js';
import type { BarmanObjectStore, SecretKeyRef } from '../cluster/backup.js';

/**
 * What a barman-cloud process needs beyond its arguments: the S3 credentials (CNPG's
 * `EnvSetCloudCredentialsAndCertificates`) and the endpoint CA. These reach the child only through its environment,
 * never its command line; nothing here is ever logged.
 */
export interface StoreCredentials {
  /** AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_SESSION_TOKEN (each only when set). */
  readonly env: Readonly<Record<string, string>>;
  /** PEM of `endpointCA`; written to the runtime dir and named by AWS_CA_BUNDLE. */
  readonly endpointCA: string | undefined;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

async function readKey(controlPlane: ControlPlane, ref: SecretKeyRef, field: string, multiline = false): Promise<string> {
  const source = `secret ${ref.name}`;
  const data = await controlPlane.readSecret(ref.name);
  if (data === undefined) throw new ConfigError(source, '', `not found (named by ${field})`);
  const bytes = data.get(ref.key);
  if (bytes === undefined) throw new ConfigError(source, ref.key, `key is missing (named by ${field})`);
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new ConfigError(source, ref.key, 'is not valid UTF-8');
  }
  // Kubernetes tools often leave a final newline; an access key never has one.
  if (!multiline) text = text.replace(/\r?\n$/, '');
  if (text.length === 0) throw new ConfigError(source, ref.key, 'is empty');
  if (text.includes('\0') || (!multiline && /[\r\n]/.test(text))) throw new ConfigError(source, ref.key, 'contains a line break or NUL');
  return text;
}

/** Reads the Secrets `spec.backup.barmanObjectStore` names. Errors name the Secret and key, never a value. */
export async function resolveStoreCredentials(controlPlane: ControlPlane, store: BarmanObjectStore, field = 'spec.backup.barmanObjectStore'): Promise<StoreCredentials> {
  const env: Record<string, string> = {};
  const s3 = store.s3Credentials;
  if (!s3.inheritFromIAMRole) {
    const pairs: [string, SecretKeyRef | undefined, string][] = [
      ['AWS_ACCESS_KEY_ID', s3.accessKeyId, 'accessKeyId'],
      ['AWS_SECRET_ACCESS_KEY', s3.secretAccessKey, 'secretAccessKey'],
      ['AWS_DEFAULT_REGION', s3.region, 'region'],
      ['AWS_SESSION_TOKEN', s3.sessionToken, 'sessionToken'],
    ];
    for (const [variable, ref, name] of pairs) {
      if (ref !== undefined) env[variable] = await readKey(controlPlane, ref, `${field}.s3Credentials.${name}`);
    }
  }
  const endpointCA = store.endpointCA === undefined ? undefined : await readKey(controlPlane, store.endpointCA, `${field}.endpointCA`, true);
  if (endpointCA !== undefined && !endpointCA.includes('-----BEGIN CERTIFICATE-----')) {
    throw new ConfigError(`secret ${store.endpointCA?.name ?? ''}`, store.endpointCA?.key ?? '', 'is not a PEM certificate');
  }
  return { env, endpointCA };
}
