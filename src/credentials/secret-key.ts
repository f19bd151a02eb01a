import type { ControlPlane } from '../controlplane/index.js';
import { ConfigError } from '../errors/index.js';

/** A reference to one key of a Secret (CNPG's SecretKeySelector). */
export interface SecretKeyReference {
  readonly name: string;
  readonly key: string;
}

/**
 * The bytes of one Secret key that `field` names. Errors name the Secret, the key and the field, never the value.
 */
export async function readSecretKey(controlPlane: ControlPlane, ref: SecretKeyReference, field: string): Promise<Buffer> {
  const source = `secret ${ref.name}`;
  const data = await controlPlane.readSecret(ref.name);
  if (data === undefined) throw new ConfigError(source, '', `not found (named by ${field})`);
  const bytes = data.get(ref.key);
  if (bytes === undefined) throw new ConfigError(source, ref.key, `key is missing (named by ${field})`);
  if (bytes.length === 0) throw new ConfigError(source, ref.key, `is empty (named by ${field})`);
  return bytes;
}
