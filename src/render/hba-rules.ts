import { isIP } from 'node:net';

/**
 * A cheap pg_hba.conf / pg_ident.conf line checker, run before anything is written. PostgreSQL's own oracle
 * (`pg_hba_file_rules`, `pg_ident_file_mappings`) checks again after writing; this catches what must never reach
 * the disk at all: line breaks, include directives, `@file` references.
 */

const connectionTypes = new Set(['local', 'host', 'hostssl', 'hostnossl', 'hostgssenc', 'hostnogssenc']);
const authMethods = new Set([
  'trust', 'reject', 'scram-sha-256', 'md5', 'password', 'gss', 'sspi', 'ident', 'peer', 'ldap', 'radius', 'cert', 'pam', 'bsd',
]);
const includeDirectives = new Set(['include', 'include_if_exists', 'include_dir']);

interface Token {
  text: string;
  quoted: boolean;
}

/** PostgreSQL's tokenizer, enough of it: whitespace-separated, `"..."` quoting with `""`, `#` starts a comment. */
export function tokenizeHbaLine(line: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < line.length) {
    const c = line[i] ?? '';
    if (c === ' ' || c === '\t') {
      i++;
      continue;
    }
    if (c === '#') break;
    let text = '';
    let quoted = false;
    while (i < line.length) {
      const d = line[i] ?? '';
      if (d === '"') {
        quoted = true;
        const end = line.indexOf('"', i + 1);
        if (end === -1) throw new Error('unterminated quoted string');
        text += line.slice(i + 1, end);
        i = end + 1;
        continue;
      }
      if (d === ' ' || d === '\t' || d === '#') break;
      text += d;
      i++;
    }
    tokens.push({ text, quoted });
  }
  return tokens;
}

/**
 * The tokens of a pg_hba / pg_ident line exactly as PostgreSQL 15's next_token() cuts them (hba.c): blanks and
 * commas separate tokens (a comma continues the same field: `all,@file` is two tokens of one field), `"` quotes,
 * `""` inside quotes is a quote, an unquoted `#` ends the line. `initialQuote` is PostgreSQL's own flag: a token
 * whose first character is a quote is taken literally.
 */
function postgresTokens(line: string): { text: string; initialQuote: boolean }[] {
  const tokens: { text: string; initialQuote: boolean }[] = [];
  let i = 0;
  for (;;) {
    while (i < line.length && (line[i] === ' ' || line[i] === '\t' || line[i] === ',')) i++;
    if (i >= line.length) return tokens;
    let text = '';
    let inQuote = false;
    let wasQuote = false;
    let initialQuote = false;
    while (i < line.length) {
      const c = line[i] ?? '';
      if (!inQuote && (c === ' ' || c === '\t')) break;
      if (!inQuote && c === '#') {
        if (text !== '' || initialQuote) tokens.push({ text, initialQuote });
        return tokens;
      }
      i++;
      if (!inQuote && c === ',') break;
      if (c !== '"' || wasQuote) text += c;
      wasQuote = inQuote && c === '"' ? !wasQuote : false;
      if (c === '"') {
        inQuote = !inQuote;
        if (text === '') initialQuote = true;
      }
    }
    tokens.push({ text, initialQuote });
  }
}

/**
 * PostgreSQL reads a token `@name` (not starting with a quote, more than the `@`) as the list of tokens in the file
 * `name`, in pg_hba.conf and in pg_ident.conf alike: any file the server can read would feed the rules.
 */
function refuseFileInclusion(line: string): void {
  const included = postgresTokens(line).find((token) => !token.initialQuote && token.text.length > 1 && token.text.startsWith('@'));
  if (included) throw new Error('@file references are not allowed');
}

function checkAddress(tokens: Token[], index: number): number {
  const address = tokens[index]?.text ?? '';
  if (['all', 'samehost', 'samenet'].includes(address)) return index + 1;
  const slash = address.indexOf('/');
  if (slash !== -1) {
    const ip = address.slice(0, slash);
    const bits = address.slice(slash + 1);
    const family = isIP(ip);
    const max = family === 4 ? 32 : 128;
    if (family === 0 || !/^\d{1,3}$/.test(bits) || Number(bits) > max) throw new Error(`invalid CIDR address "${address}"`);
    return index + 1;
  }
  if (isIP(address) !== 0) {
    const mask = tokens[index + 1]?.text ?? '';
    if (isIP(mask) !== isIP(address)) throw new Error(`IP address "${address}" needs a CIDR suffix or a netmask`);
    return index + 2;
  }
  if (!/^\.?[A-Za-z0-9]([-A-Za-z0-9.]*)$/.test(address)) throw new Error(`invalid address "${address}"`);
  return index + 1;
}

/** Throws a message (never containing more than the offending token) when the pg_hba line is unsafe or malformed. */
export function checkHbaLine(line: string): { trust: boolean; catchAll: boolean } {
  if (/[\r\n\0]/.test(line)) throw new Error('contains a line break or NUL');
  refuseFileInclusion(line);
  const tokens = tokenizeHbaLine(line);
  if (tokens.length === 0) return { trust: false, catchAll: false };
  for (const token of tokens) {
    if (token.text.includes('${')) throw new Error('${...} references are not supported');
  }
  const type = tokens[0]?.text ?? '';
  if (includeDirectives.has(type.toLowerCase())) throw new Error('include directives are not allowed');
  if (!connectionTypes.has(type)) throw new Error(`invalid connection type "${type}"`);
  const minFields = type === 'local' ? 4 : 5;
  if (tokens.length < minFields) throw new Error(`too few fields for a "${type}" rule`);
  const methodIndex = type === 'local' ? 3 : checkAddress(tokens, 3);
  const method = tokens[methodIndex]?.text ?? '';
  if (!authMethods.has(method)) throw new Error(`invalid authentication method "${method}"`);
  for (const option of tokens.slice(methodIndex + 1)) {
    if (!/^[a-z_]+=/.test(option.text)) throw new Error(`invalid authentication option "${option.text.split('=')[0] ?? ''}"`);
  }
  const [database, user, address] = [tokens[1]?.text, tokens[2]?.text, tokens[3]?.text];
  const anyAddress = type === 'local' || address === 'all';
  return {
    trust: method === 'trust' && type !== 'local',
    catchAll: type === 'host' && database === 'all' && user === 'all' && anyAddress,
  };
}

export function checkIdentLine(line: string): void {
  if (/[\r\n\0]/.test(line)) throw new Error('contains a line break or NUL');
  refuseFileInclusion(line);
  const tokens = tokenizeHbaLine(line);
  if (tokens.length === 0) return;
  if (includeDirectives.has((tokens[0]?.text ?? '').toLowerCase())) throw new Error('include directives are not allowed');
  if (tokens.length !== 3) throw new Error('a mapping needs exactly three fields: map-name system-username database-username');
}
