import { isMap, isScalar, isSeq, parseDocument } from 'yaml';
import { ConfigError } from '../errors/index.js';
import { fieldPath } from './parse.js';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The manifest's text, or a ConfigError naming the field that holds bytes which are not UTF-8. A lenient decode
 * would turn them into U+FFFD and apply a value nobody wrote.
 */
export function decodeManifest(bytes: Uint8Array, source: string): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    // located below
  }
  const byteOffset = firstInvalidByte(bytes);
  // The lenient text serves only to find the field: the valid prefix decodes exactly, so offsets line up.
  const offset = Buffer.from(bytes.subarray(0, byteOffset)).toString('utf8').length;
  const text = Buffer.from(bytes).toString('utf8');
  const line = text.slice(0, offset).split('\n').length;
  throw new ConfigError(source, fieldAt(text, offset) ?? '', `is not valid UTF-8 (line ${line})`);
}

/** The offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629: no overlongs, no surrogates). */
export function firstInvalidByte(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i] ?? 0;
    const trailing = lead < 0x80 ? 0 : lead >= 0xc2 && lead <= 0xdf ? 1 : lead >= 0xe0 && lead <= 0xef ? 2 : lead >= 0xf0 && lead <= 0xf4 ? 3 : -1;
    if (trailing < 0) return i;
    for (let k = 1; k <= trailing; k++) {
      const byte = bytes[i + k];
      // The second byte's range excludes overlong forms (E0, F0), surrogates (ED) and code points above U+10FFFF (F4).
      const low = k === 1 && lead === 0xe0 ? 0xa0 : k === 1 && lead === 0xf0 ? 0x90 : 0x80;
      const high = k === 1 && lead === 0xed ? 0x9f : k === 1 && lead === 0xf4 ? 0x8f : 0xbf;
      if (byte === undefined || byte < low || byte > high) return i;
    }
    i += trailing + 1;
  }
  return bytes.length;
}

/** The field path (`spec.postgresql.parameters.work_mem`) of the key or value at `offset`, if one holds it. */
function fieldAt(text: string, offset: number): string | undefined {
  const holds = (node: unknown): boolean => isScalar(node) && node.range != null && node.range[0] <= offset && offset < node.range[1];
  const walk = (node: unknown, path: PropertyKey[]): PropertyKey[] | undefined => {
    if (holds(node)) return path;
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : '?';
        const found = holds(pair.key) ? [...path, key] : walk(pair.value, [...path, key]);
        if (found) return found;
      }
    } else if (isSeq(node)) {
      for (const [index, item] of node.items.entries()) {
        const found = walk(item, [...path, index]);
        if (found) return found;
      }
    }
    return undefined;
  };
  const path = walk(parseDocument(text, { prettyErrors: false }).contents, []);
  return path === undefined ? undefined : fieldPath(path);
}
