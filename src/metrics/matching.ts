/**
 * The two small matchers CNPG's query format needs: `runonserver` semantic-version ranges (blang/semver syntax) and
 * `target_databases` patterns (Go's `path.Match`). Both are written out by hand so that user input never becomes a
 * regular expression.
 */

export type Version = readonly [number, number, number];

/**
 * PostgreSQL's version as CNPG compares it: major.0.minor (PostgreSQL 15.18 is 15.0.18), because PostgreSQL's
 * second number is a patch level, not a semver minor.
 */
export function postgresSemver(serverVersionNum: number): Version {
  return [Math.floor(serverVersionNum / 10000), 0, serverVersionNum % 100];
}

function compare(a: Version, b: Version): number {
  for (let i = 0; i < 3; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

const operators = ['>=', '<=', '!=', '==', '>', '<', '=', '!'] as const;

function parseComparator(text: string): ((v: Version) => boolean) | undefined {
  const op = operators.find((o) => text.startsWith(o)) ?? '';
  const parts = text.slice(op.length).split('.');
  if (parts.length < 1 || parts.length > 3 || parts.some((p) => !/^\d+$/.test(p))) return undefined;
  const target: Version = [Number(parts[0]), Number(parts[1] ?? 0), Number(parts[2] ?? 0)];
  switch (op) {
    case '>=':
      return (v) => compare(v, target) >= 0;
    case '<=':
      return (v) => compare(v, target) <= 0;
    case '>':
      return (v) => compare(v, target) > 0;
    case '<':
      return (v) => compare(v, target) < 0;
    case '!=':
    case '!':
      return (v) => compare(v, target) !== 0;
    default:
      return (v) => compare(v, target) === 0;
  }
}

/**
 * A range such as `>=10.0.0 <17.0.0 || >=18.0.0`: space-separated comparators all hold, `||` separates
 * alternatives. Undefined when the range cannot be parsed (the query is then skipped and counted as an error).
 */
export function parseVersionRange(range: string): ((v: Version) => boolean) | undefined {
  const alternatives: ((v: Version) => boolean)[][] = [];
  for (const alternative of range.split('||')) {
    const comparators = alternative
      .trim()
      .replace(/(>=|<=|!=|==|>|<|=|!)\s+/g, '$1')
      .split(/\s+/)
      .filter((c) => c !== '')
      .map(parseComparator);
    if (comparators.length === 0 || comparators.some((c) => c === undefined)) return undefined;
    alternatives.push(comparators as ((v: Version) => boolean)[]);
  }
  return (v) => alternatives.some((all) => all.every((c) => c(v)));
}

/** Whether `name` holds pattern syntax (`*`, `?`, `[`), like CNPG's `isPathPattern`. */
export function isPattern(name: string): boolean {
  return /[[\]*?]/.test(name);
}

/** Go's `path.Match` for a single name: `*` any run, `?` one character, `[...]`/`[^...]` classes, `\\` escapes. */
export function globMatch(pattern: string, name: string): boolean {
  const p = Array.from(pattern);
  const s = Array.from(name);
  /** `[...]` at `pi` against `c`: [matched, index after the class], or undefined when the class is unterminated. */
  const matchClass = (pi: number, c: string): [boolean, number] | undefined => {
    let i = pi + 1;
    const negated = p[i] === '^';
    if (negated) i++;
    let matched = false;
    while (i < p.length && p[i] !== ']') {
      const lo = p[i] ?? '';
      let hi = lo;
      if (p[i + 1] === '-' && i + 2 < p.length && p[i + 2] !== ']') {
        hi = p[i + 2] ?? '';
        i += 3;
      } else {
        i += 1;
      }
      if (lo <= c && c <= hi) matched = true;
    }
    if (i >= p.length) return undefined;
    return [matched !== negated, i + 1];
  };
  // Failed (pattern, name) positions: with this memo `*a*a*a...` costs O(|p|·|s|²) instead of exponential time.
  const failed = new Set<number>();
  const go = (startP: number, startS: number): boolean => {
    const state = startP * (s.length + 1) + startS;
    if (failed.has(state)) return false;
    const result = walk(startP, startS);
    if (!result) failed.add(state);
    return result;
  };
  const walk = (pi: number, si: number): boolean => {
    while (pi < p.length) {
      const ch = p[pi];
      if (ch === '*') {
        for (let k = si; k <= s.length; k++) if (go(pi + 1, k)) return true;
        return false;
      }
      if (si >= s.length) return false;
      const c = s[si] ?? '';
      if (ch === '?') {
        pi++;
        si++;
      } else if (ch === '[') {
        const result = matchClass(pi, c);
        if (!result || !result[0]) return false;
        pi = result[1];
        si++;
      } else {
        const literal = ch === '\\' ? p[++pi] : ch;
        if (literal !== c) return false;
        pi++;
        si++;
      }
    }
    return si === s.length;
  };
  return go(0, 0);
}
