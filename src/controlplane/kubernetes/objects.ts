import { ConfigError } from '../../errors/index.js';
import { isValidObjectKey } from '../../fs/confined.js';
import { maxObjectBytes } from '../files.js';
import { withObjectVersion, type ObjectData } from '../types.js';
import { fingerprint } from './fingerprint.js';
import { isRecord, type KubeObject } from './resources.js';

function stringEntries(value: unknown, source: string, field: string): [string, string][] {
  if (value === undefined || value === null) return [];
  if (!isRecord(value)) throw new ConfigError(source, field, 'is not a map');
  return Object.entries(value).map(([key, inner]) => {
    if (typeof inner !== 'string') throw new ConfigError(source, key, 'is not a string');
    return [key, inner];
  });
}

/**
 * Key -> bytes, sorted by key, with the same limits and messages as files mode: a Secret seen through the API and
 * the same Secret mounted as a volume give the same ObjectData.
 */
function objectData(entries: [string, Buffer][], source: string): ObjectData {
  const data = new Map<string, Buffer>();
  for (const [key, bytes] of entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    // The API server enforces the same key rule; a volume would leave such a key out, and so does this.
    if (!isValidObjectKey(key)) continue;
    if (bytes.length > maxObjectBytes) throw new ConfigError(source, key, `is larger than ${maxObjectBytes} bytes`);
    data.set(key, bytes);
  }
  return data;
}

/** A Secret's `data` is base64 on the wire; the bytes are exactly what was stored. */
export function secretData(object: KubeObject, source: string): ObjectData {
  const data = objectData(
    stringEntries(object.data, source, 'data').map(([key, value]) => [key, Buffer.from(value, 'base64')]),
    source,
  );
  return withObjectVersion(data, object.metadata?.resourceVersion ?? '');
}

/** A ConfigMap has UTF-8 `data` and base64 `binaryData`; a volume shows both as files, and so does this. */
export function configMapData(object: KubeObject, source: string): ObjectData {
  const text = stringEntries(object.data, source, 'data').map(([key, value]): [string, Buffer] => [key, Buffer.from(value, 'utf8')]);
  const binary = stringEntries(object.binaryData, source, 'binaryData').map(([key, value]): [string, Buffer] => [key, Buffer.from(value, 'base64')]);
  return objectData([...text, ...binary], source);
}

/** Content, not resourceVersion: a label edit on a Secret is no reason to reload anything. */
export function objectContentFingerprint(object: KubeObject | undefined): string {
  if (object === undefined) return 'absent';
  return fingerprint({ data: object.data, binaryData: object.binaryData });
}
