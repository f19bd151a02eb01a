/** Order statistics for small samples (a handful of runs) and for latency lists (thousands of requests). */

function sorted(values: readonly number[]): number[] {
  if (values.length === 0) throw new Error('no values');
  return [...values].sort((a, b) => a - b);
}

/** Nearest-rank percentile (p in 0..100): always one of the observed values, never an interpolation. */
export function percentile(values: readonly number[], p: number): number {
  const s = sorted(values);
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1] ?? Number.NaN;
}

/** The middle value; the mean of the two middle values for an even count. */
export function median(values: readonly number[]): number {
  const s = sorted(values);
  const mid = Math.floor(s.length / 2);
  const upper = s[mid] ?? Number.NaN;
  return s.length % 2 === 1 ? upper : ((s[mid - 1] ?? Number.NaN) + upper) / 2;
}

export function minimum(values: readonly number[]): number {
  return sorted(values)[0] ?? Number.NaN;
}

export function maximum(values: readonly number[]): number {
  const s = sorted(values);
  return s[s.length - 1] ?? Number.NaN;
}
