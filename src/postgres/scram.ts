import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';

const iterations = 4096; // PostgreSQL's scram_iterations default

/** RFC 3454 C.1.2 (mapped to a space) and B.1 (mapped to nothing), as SASLprep applies them. */
const nonAsciiSpaces = new Set([0x00a0, 0x1680, 0x202f, 0x205f, 0x3000]);
const mappedToNothing = new Set([0x00ad, 0x034f, 0x1806, 0x200c, 0x200d, 0x2060, 0xfeff]);

/**
 * PostgreSQL's SASLprep tolerance: it normalises with SASLprep and, when the password is not valid SASLprep input,
 * uses the raw bytes. ASCII passwords (the common case) are their own normal form; others get NFKC after the
 * RFC 4013 mappings, which is what SASLprep does for every input PostgreSQL would accept.
 */
export function saslPrep(password: string): string {
  if (/^[\x20-\x7e]*$/.test(password)) return password;
  let mapped = '';
  for (const char of password) {
    const code = char.codePointAt(0) ?? 0;
    if (nonAsciiSpaces.has(code) || (code >= 0x2000 && code <= 0x200b)) mapped += ' ';
    else if (!mappedToNothing.has(code) && !(code >= 0xfe00 && code <= 0xfe0f) && !(code >= 0x180b && code <= 0x180d)) mapped += char;
  }
  return mapped.normalize('NFKC');
}

/**
 * A SCRAM-SHA-256 verifier in pg_authid's format, computed here so the cleartext password never reaches the
 * server, its logs or pg_stat_statements.
 */
export function scramSha256Verifier(password: string, salt: Buffer = randomBytes(16)): string {
  const salted = pbkdf2Sync(Buffer.from(saslPrep(password), 'utf8'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}
