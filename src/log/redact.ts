/**
 * PostgreSQL prints the pg_hba.conf line a connection matched in the DETAIL of every failed authentication
 * ("Connection matched pg_hba.conf line 25: "host all all 0.0.0.0/0 ldap ... ldapbindpasswd="...""), and the LDAP
 * bind password of `spec.postgresql.ldap` can only live in that line. The log pipe masks the option's value before a
 * record leaves pgim, in both paths (byte and string); the rest of the record is kept as PostgreSQL wrote it.
 */
const option = 'ldapbindpasswd=';
const optionBytes = Buffer.from(option);
const masked = `${option}********`;
/** The option's value as PostgreSQL's tokenizer reads it: quoted parts (`""` is a quote) and unquoted characters. */
const optionValue = /ldapbindpasswd=(?:"(?:[^"]|"")*"|[^\s",]+)*/g;

/** The text with every `ldapbindpasswd=` value masked. */
export function redactHbaSecrets(text: string): string {
  return text.includes(option) ? text.replace(optionValue, masked) : text;
}

function redactValues(value: unknown): unknown {
  if (typeof value === 'string') return redactHbaSecrets(value);
  if (typeof value === 'object' && value !== null) {
    for (const [key, each] of Object.entries(value)) (value as Record<string, unknown>)[key] = redactValues(each);
  }
  return value;
}

/** A record's JSON with every string value redacted (untouched, and not re-serialised, when there is nothing to mask). */
export function redactRecordJson(json: string): string {
  return json.includes(option) ? JSON.stringify(redactValues(JSON.parse(json))) : json;
}

/** JSON lines (each ending in a newline) with the lines that hold the option re-serialised, masked. */
export function redactJsonLines(bytes: Buffer): Buffer {
  if (bytes.indexOf(optionBytes) === -1) return bytes;
  const lines = bytes.toString('utf8').split('\n');
  return Buffer.from(lines.map((line) => (line.includes(option) ? redactRecordJson(line) : line)).join('\n'));
}
