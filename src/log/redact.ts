/**
 * PostgreSQL prints the pg_hba.conf line a connection matched in the DETAIL of every failed authentication
 * ("Connection matched pg_hba.conf line 25: "host all all 0.0.0.0/0 ldap ... ldapbindpasswd="...""), and the LDAP
 * bind password of `spec.postgresql.ldap` can only live in that line. The log pipe masks the option's value before a
 * record leaves pgim, in both paths (byte and string); the rest of the record is kept as PostgreSQL wrote it.
 */
/** The text that marks a line for redaction (the log pipe's converter watches for it: csvlog-bytes.ts). */
export const redactedOption = 'ldapbindpasswd=';
const option = redactedOption;
const optionBytes = Buffer.from(option);
const masked = `${option}********`;
/**
 * Where the option's value ends, read as PostgreSQL's tokenizer reads a token: quoted parts (in which `""` is a
 * quote) and unquoted characters, up to an unquoted blank, comma or the end. When the value closes the line that
 * PostgreSQL's DETAIL wraps in quotes, that last quote reads as part of it and is masked too: masking more is safe.
 */
function valueEnd(text: string, start: number): number {
  let i = start;
  let quoted = false;
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') i++;
        else quoted = false;
      }
    } else if (c === '"') quoted = true;
    else if (c === ' ' || c === '\t' || c === ',') break;
    i++;
  }
  return i;
}

/** The text with every `ldapbindpasswd=` value masked. */
export function redactHbaSecrets(text: string): string {
  let out = '';
  let from = 0;
  for (let at = text.indexOf(option); at !== -1; at = text.indexOf(option, from)) {
    const start = at + option.length;
    out += text.slice(from, at) + masked;
    from = valueEnd(text, start);
  }
  return from === 0 ? text : out + text.slice(from);
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
