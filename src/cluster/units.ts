/** The two value syntaxes the Cluster's monitoring and probe fields use: Go durations and Kubernetes quantities. */

const durationUnits: Readonly<Record<string, number>> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

/**
 * A Go `time.ParseDuration` string (`30s`, `1m30s`, `500ms`, `0`) in seconds; undefined when it is not one.
 * `spec.monitoring.metricsQueriesTTL` is typed as a duration in CNPG's CRD.
 */
export function parseGoDuration(text: string): number | undefined {
  const s = text.trim();
  if (s === '0') return 0;
  if (s === '' || s.startsWith('-')) return undefined;
  let rest = s.startsWith('+') ? s.slice(1) : s;
  let total = 0;
  while (rest !== '') {
    const amount = /^[0-9.]+/.exec(rest)?.[0];
    if (amount === undefined || !/[0-9]/.test(amount)) return undefined;
    rest = rest.slice(amount.length);
    const unit = /^(ns|us|µs|ms|s|m|h)/.exec(rest)?.[0];
    if (unit === undefined) return undefined;
    rest = rest.slice(unit.length);
    total += Number(amount) * (durationUnits[unit] ?? Number.NaN);
  }
  return Number.isFinite(total) ? total : undefined;
}

const quantitySuffixes: Readonly<Record<string, number>> = {
  '': 1, n: 1e-9, u: 1e-6, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/**
 * A Kubernetes quantity (`1Gi`, `512Mi`, `100M`, `1e6`, or a plain integer) as a whole number; undefined when it is
 * not one. `spec.probes.*.maximumLag` is an int-or-string quantity of bytes.
 */
export function parseQuantity(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.floor(value) : undefined;
  const text = value.trim().replace(/^\+/, '');
  const amount = /^[0-9.]+/.exec(text)?.[0];
  if (amount === undefined || !/[0-9]/.test(amount)) return undefined;
  const rest = text.slice(amount.length);
  let n: number;
  if (/^[eE][-+]?[0-9]+$/.test(rest)) n = Number(`${amount}${rest}`);
  else if (rest in quantitySuffixes) n = Number(amount) * (quantitySuffixes[rest] ?? Number.NaN);
  else return undefined;
  return Number.isFinite(n) && n >= 0 ? Math.floor(n) : undefined;
}
