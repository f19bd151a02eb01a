/**
 * Which initdb options pgim passes on: CNPG's `bootstrap.initdb` fields become these options (the operator's
 * `--initdb-flags`), and the deprecated `bootstrap.initdb.options` list is passed as it is, as CNPG does. Options
 * that would undo what pgim's bootstrap relies on (PGDATA, the superuser's name, authentication, a separate WAL
 * directory, group access, no fsync, no clean-up after a failure) are refused, naming the option.
 */

/** Options that take a value (`--name=value` or `--name value`; short forms take the next word). */
const withValue: Readonly<Record<string, string>> = {
  '-E': '--encoding', '--encoding': '--encoding',
  '--locale': '--locale', '--lc-collate': '--lc-collate', '--lc-ctype': '--lc-ctype', '--lc-messages': '--lc-messages',
  '--lc-monetary': '--lc-monetary', '--lc-numeric': '--lc-numeric', '--lc-time': '--lc-time',
  '--locale-provider': '--locale-provider', '--icu-locale': '--icu-locale', '--icu-rules': '--icu-rules', '--builtin-locale': '--builtin-locale',
  '--wal-segsize': '--wal-segsize', '-T': '--text-search-config', '--text-search-config': '--text-search-config',
};

/** Options without a value. */
const plain: Readonly<Record<string, string>> = { '-k': '--data-checksums', '--data-checksums': '--data-checksums', '--no-locale': '--no-locale', '-d': '--debug', '--debug': '--debug' };

/** The options in their long `--name=value` form; throws with the refused option named. */
export function normalizeInitdbOptions(words: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const word = words[i] ?? '';
    const [name = '', inline] = word.startsWith('--') ? word.split(/=(.*)/s, 2) : [word, undefined];
    const long = withValue[name];
    if (long !== undefined) {
      const value = inline ?? words[++i];
      if (value === undefined || value === '') throw new Error(`"${word}" needs a value`);
      out.push(`${long}=${value}`);
      continue;
    }
    const flag = plain[name];
    if (flag !== undefined && inline === undefined) {
      out.push(flag);
      continue;
    }
    throw new Error(
      `"${word}" is not an initdb option pgim passes on (it sets PGDATA, the superuser, authentication, --waldir and clean-up itself; accepted: encoding, locale, lc-*, locale-provider, icu-locale, icu-rules, builtin-locale, wal-segsize, text-search-config, data-checksums, no-locale, debug)`,
    );
  }
  return out;
}

/** The value of `--name=` in normalized options (the last one wins, as in initdb). */
export function initdbOptionValue(options: readonly string[], name: string): string | undefined {
  let found: string | undefined;
  for (const option of options) if (option.startsWith(`${name}=`)) found = option.slice(name.length + 1);
  return found;
}
