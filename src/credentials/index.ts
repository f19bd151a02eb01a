import type { Cluster } from '../cluster/schema.js';
import type { ControlPlane, ObjectData } from '../controlplane/index.js';
import { ConfigError } from '../errors/index.js';

export interface Credential {
  readonly username: string;
  readonly password: string;
}

export interface Credentials {
  /** The application owner (`<cluster>-app` or `bootstrap.initdb.secret`). */
  readonly owner: Credential;
  /** Only while `enableSuperuserAccess` is true; otherwise the superuser has no password at all. */
  readonly superuser: Credential | undefined;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A Secret key as one line of UTF-8 text, not empty. Errors name the Secret and key, never the value. */
export function textKey(data: ObjectData, source: string, key: string): string {
  const bytes = data.get(key);
  if (bytes === undefined) throw new ConfigError(source, key, 'key is missing');
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new ConfigError(source, key, 'is not valid UTF-8');
  }
  if (text.length === 0) throw new ConfigError(source, key, 'is empty');
  // A password must fit on one line of a passfile, and NUL ends a C string early.
  if (/[\r\n\0]/.test(text)) throw new ConfigError(source, key, 'contains a line break or NUL');
  return text;
}

async function readBasicAuth(controlPlane: ControlPlane, secretName: string, expectedUser: string): Promise<Credential> {
  const source = `secret ${secretName}`;
  const data = await controlPlane.readSecret(secretName);
  if (data === undefined) throw new ConfigError(source, '', 'not found');
  const username = textKey(data, source, 'username');
  if (username !== expectedUser) throw new ConfigError(source, 'username', `must be "${expectedUser}"`);
  return { username, password: textKey(data, source, 'password') };
}

/** Reads and checks the passwords pgim applies. Errors name the Secret and key, never the value. */
export async function resolveCredentials(controlPlane: ControlPlane, cluster: Cluster): Promise<Credentials> {
  const owner = await readBasicAuth(controlPlane, cluster.bootstrap.secretName, cluster.bootstrap.owner);
  const superuser = cluster.enableSuperuserAccess
    ? await readBasicAuth(controlPlane, cluster.superuserSecretName, 'postgres')
    : undefined;
  return { owner, superuser };
}
