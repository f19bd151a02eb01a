import { createHash } from 'node:crypto';

/** JSON with object keys sorted, so two copies of the same content always serialise the same way. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return Object.fromEntries(entries.map(([key, inner]) => [key, canonical(inner)]));
  }
  return value;
}

/** A digest of what matters in an object; equal digests mean nothing pgim reads has changed. */
export function fingerprint(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(canonical(value) ?? null)).digest('hex');
}
