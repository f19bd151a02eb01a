/** PostgreSQL configuration-file string escaping, as CNPG's `configfile.go` does it. */
const escapes: Readonly<Record<string, string>> = {
  '\\': '\\\\',
  "'": "''",
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\b': '\\b',
  '\f': '\\f',
};

export function escapeConfValue(value: string): string {
  return value.replace(/[\\'\n\r\t\b\f]/g, (c) => escapes[c] ?? c);
}

export function confLine(key: string, value: string): string {
  return `${key} = '${escapeConfValue(value)}'`;
}
