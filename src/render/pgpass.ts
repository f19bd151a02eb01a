/** One `.pgpass` line per role pgim can authenticate as. */
export interface PassfileEntry {
  username: string;
  password: string;
}

/** libpq's passfile escaping: `\` and `:` are backslash-escaped; a line break cannot be represented at all. */
export function escapePassfileField(value: string): string {
  if (/[\r\n\0]/.test(value)) throw new Error('a passfile field cannot contain a line break or NUL');
  return value.replace(/[\\:]/g, (c) => `\\${c}`);
}

export function renderPgpass(entries: readonly PassfileEntry[], port: number): string {
  return entries.map((e) => `*:${port}:*:${escapePassfileField(e.username)}:${escapePassfileField(e.password)}\n`).join('');
}
