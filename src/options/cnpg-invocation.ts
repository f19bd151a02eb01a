import { normalizeInitdbOptions } from './initdb-options.js';
import type { PostInitRefsFolders } from './index.js';

/**
 * CloudNativePG's command lines, mapped onto pgim's own commands.
 *
 * CNPG's operator writes `/controller/manager instance run --status-port-tls --log-level=info` into the instance
 * pod template and `/controller/manager instance init|join ...` into its Jobs, with PGDATA, POD_NAME, NAMESPACE and
 * CLUSTER_NAME in the environment (pkg/specs). pgim accepts those invocations as they are. What it cannot do yet
 * exits with code 3 and names the command or flag; nothing is silently done differently. A pure function, so every
 * mapping is unit-tested (test/unit/cnpg-invocation.test.ts); cmd/pgim.ts runs the result.
 */

/** What `--app-db-name`, `--app-user`, `--cluster-name` and `--parent-node` said: checked against the Cluster. */
export interface CnpgExpectations {
  readonly clusterName?: string | undefined;
  readonly appDatabase?: string | undefined;
  readonly appUser?: string | undefined;
  readonly parentNode?: string | undefined;
}

export type CnpgTranslation =
  | {
      readonly kind: 'pgim';
      /** The pgim command and flags to run instead (pgim's documented interface). */
      readonly argv: readonly string[];
      /** Environment to set before running (pgim's own variables, e.g. PGIM_LOG_LEVEL, POD_NAME). */
      readonly env: Readonly<Record<string, string>>;
      /** `--initdb-flags`, split as a shell would, for `init`. */
      readonly initdbFlags: readonly string[];
      /** `--post-init-*-sql-refs-folder`, for `init`. */
      readonly postInitRefsFolders: PostInitRefsFolders;
      readonly expectations: CnpgExpectations;
    }
  | { readonly kind: 'status' }
  | { readonly kind: 'not-implemented'; readonly message: string }
  | { readonly kind: 'usage'; readonly message: string };

/** CNPG's log levels (machinery `pkg/log`) in pino's names. */
const logLevels: Readonly<Record<string, string>> = { error: 'error', warning: 'warn', info: 'info', debug: 'debug', trace: 'trace' };

/**
 * The Job names CNPG gives an instance's bootstrap (`<instance>-<role>`, pkg/specs/jobs.go): its POD_NAME is the Job's
 * pod, so pgim takes the instance's name back from it.
 */
const jobSuffixes: Readonly<Record<string, readonly string[]>> = {
  init: ['-initdb', '-import'],
  restore: ['-full-recovery'],
  join: ['-join'],
  pgbasebackup: ['-pgbasebackup'],
};

/**
 * Splits a string as a POSIX shell would (CNPG joins `--initdb-flags` and the post-init SQL lists with shellquote):
 * single quotes, double quotes with backslash escapes, backslash outside quotes. Throws on an unterminated quote.
 */
export function shellSplit(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charAt(i);
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new Error('unterminated single quote');
      word += text.slice(i + 1, end);
      inWord = true;
      i = end;
    } else if (c === '"') {
      i++;
      for (; i < text.length && text.charAt(i) !== '"'; i++) {
        const d = text.charAt(i);
        if (d === '\\' && i + 1 < text.length && '$`"\\\n'.includes(text.charAt(i + 1))) {
          word += text.charAt(++i);
        } else word += d;
      }
      if (i >= text.length) throw new Error('unterminated double quote');
      inWord = true;
    } else if (c === '\\') {
      if (i + 1 < text.length) word += text.charAt(++i);
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

interface FlagDef {
  readonly takesValue: boolean;
}

/** The flags every instance subcommand takes (defaults from PGDATA, POD_NAME, CLUSTER_NAME, NAMESPACE). */
const instanceIdentity: Readonly<Record<string, FlagDef>> = {
  'pg-data': { takesValue: true },
  'pod-name': { takesValue: true },
  'cluster-name': { takesValue: true },
  namespace: { takesValue: true },
};

const flagSets: Readonly<Record<string, Readonly<Record<string, FlagDef>>>> = {
  run: {
    ...instanceIdentity,
    'status-port-tls': { takesValue: false },
    'metrics-port-tls': { takesValue: false },
    'pprof-server': { takesValue: false },
  },
  init: {
    ...instanceIdentity,
    'pg-wal': { takesValue: true },
    'parent-node': { takesValue: true },
    'initdb-flags': { takesValue: true },
    'app-db-name': { takesValue: true },
    'app-user': { takesValue: true },
    'post-init-sql': { takesValue: true },
    'post-init-application-sql': { takesValue: true },
    'post-init-template-sql': { takesValue: true },
    'post-init-sql-refs-folder': { takesValue: true },
    'post-init-application-sql-refs-folder': { takesValue: true },
    'post-init-template-sql-refs-folder': { takesValue: true },
  },
  join: {
    ...instanceIdentity,
    'pg-wal': { takesValue: true },
    'parent-node': { takesValue: true },
  },
  restore: {
    ...instanceIdentity,
    'pg-wal': { takesValue: true },
  },
  /** CNPG's `instance pgbasebackup` (bootstrap.pg_basebackup): pgim's `init`, which clones such a manifest. */
  pgbasebackup: {
    ...instanceIdentity,
    'pg-wal': { takesValue: true },
  },
  status: {},
};

/** The global flags of CNPG's `manager` (machinery pkg/log/flags.go); only --log-level maps onto pgim. */
const globalFlags: Readonly<Record<string, FlagDef>> = {
  'log-level': { takesValue: true },
  'log-destination': { takesValue: true },
  'log-truncate-destination': { takesValue: false },
  'log-field-level': { takesValue: true },
  'log-field-timestamp': { takesValue: true },
};

/** CNPG subcommands pgim does not implement yet, and what they would do. */
const notYet: Readonly<Record<string, string>> = {
  restoresnapshot: 'recovery from a volume snapshot',
  upgrade: 'a major upgrade with pg_upgrade',
};

const notImplemented = (message: string): CnpgTranslation => ({ kind: 'not-implemented', message });
const usage = (message: string): CnpgTranslation => ({ kind: 'usage', message });

function parseFlags(args: readonly string[], defs: Readonly<Record<string, FlagDef>>): Map<string, string | true> | string {
  const values = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (!arg.startsWith('--')) return `unexpected argument "${arg}"`;
    const [name = '', inline] = arg.slice(2).split(/=(.*)/s, 2);
    const def = defs[name] ?? globalFlags[name];
    if (!def) return `unknown flag --${name}`;
    if (!def.takesValue) {
      if (inline !== undefined && !['true', 'false'].includes(inline)) return `--${name} takes no value`;
      if (inline !== 'false') values.set(name, true);
      continue;
    }
    const value = inline ?? args[++i];
    if (value === undefined) return `--${name} needs a value`;
    values.set(name, value);
  }
  return values;
}

/**
 * Maps `instance <sub> [flags]` (argv after the program name) with CNPG's
 * environment onto a pgim invocation, or says why not.
 */
export function translateCnpgInvocation(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): CnpgTranslation {
  const [top, sub, ...rest] = argv;
  // `wal-archive` and `wal-restore` are pgim's own commands with CNPG's flags (cmd/pgim.ts, src/backup/).
  if (top !== 'instance') return usage(`not a CloudNativePG invocation: ${String(top)}`);
  if (sub === undefined) return usage('instance: a subcommand is required (run, init, join, status)');
  const what = notYet[sub];
  if (what !== undefined) return notImplemented(`"instance ${sub}" is not implemented yet: ${what}`);
  const defs = flagSets[sub];
  if (!defs) return usage(`instance: unknown subcommand "${sub}"`);
  const flags = parseFlags(rest, defs);
  if (typeof flags === 'string') return usage(`instance ${sub}: ${flags}`);
  const value = (name: string): string | undefined => {
    const v = flags.get(name);
    return typeof v === 'string' ? v : undefined;
  };

  const pgimEnv: Record<string, string> = {};
  const level = value('log-level');
  if (level !== undefined) {
    const mapped = logLevels[level];
    if (mapped === undefined) return usage(`--log-level: "${level}" is not one of error, warning, info, debug, trace`);
    pgimEnv.PGIM_LOG_LEVEL = mapped;
  }
  for (const name of ['log-destination', 'log-truncate-destination', 'log-field-level', 'log-field-timestamp']) {
    if (flags.has(name)) return notImplemented(`--${name} is not implemented yet: pgim logs JSON lines to stdout with CNPG's keys`);
  }
  if (sub === 'status') return { kind: 'status' };

  const tcpUserTimeout = env.CNPG_STANDBY_TCP_USER_TIMEOUT;
  if (tcpUserTimeout !== undefined && tcpUserTimeout !== '' && tcpUserTimeout !== '5000') {
    return notImplemented(`CNPG_STANDBY_TCP_USER_TIMEOUT=${tcpUserTimeout} is not implemented yet: pgim's standbys use tcp_user_timeout=5000 (CNPG's default)`);
  }
  if (flags.has('pprof-server')) return notImplemented('--pprof-server is not implemented yet (a Go profiler; pgim is not a Go program)');
  if (value('pg-wal') !== undefined) {
    return notImplemented('--pg-wal is not implemented yet: pgim keeps pg_wal inside PGDATA (no separate WAL volume)');
  }
  // `--post-init-sql`, `--post-init-application-sql` and `--post-init-template-sql` repeat the Cluster's fields, which
  // pgim reads itself; the refs folders are where the Job mounted the referenced Secrets and ConfigMaps.
  const postInitRefsFolders: PostInitRefsFolders = {
    ...folder('postgres', value('post-init-sql-refs-folder')),
    ...folder('template', value('post-init-template-sql-refs-folder')),
    ...folder('application', value('post-init-application-sql-refs-folder')),
  };

  let initdbFlags: string[] = [];
  const rawInitdb = value('initdb-flags');
  if (rawInitdb !== undefined) {
    let words: string[];
    try {
      words = shellSplit(rawInitdb);
    } catch (err) {
      return usage(`--initdb-flags: ${(err as Error).message}`);
    }
    try {
      initdbFlags = normalizeInitdbOptions(words);
    } catch (err) {
      return notImplemented(`--initdb-flags: ${(err as Error).message} (CNPG's bootstrap.initdb fields)`);
    }
  }

  const clusterName = value('cluster-name') ?? nonEmpty(env.CLUSTER_NAME);
  const parentNode = value('parent-node');
  if (sub === 'init' && parentNode !== undefined) return usage('instance init: --parent-node is for join');
  if (sub === 'join') {
    if (parentNode === undefined) return usage('instance join: --parent-node is required');
    const expected = clusterName === undefined ? undefined : `${clusterName}-rw`;
    if (expected !== undefined ? parentNode !== expected : !parentNode.endsWith('-rw')) {
      return notImplemented(
        `--parent-node ${parentNode}: pgim clones the cluster's current primary (${expected ?? '<cluster>-rw'}); another parent is not implemented yet`,
      );
    }
  }

  const args: string[] = [sub === 'pgbasebackup' ? 'init' : sub];
  const pgdata = value('pg-data');
  if (pgdata !== undefined) args.push('--pgdata', pgdata);
  let podName = value('pod-name') ?? nonEmpty(env.POD_NAME);
  for (const suffix of jobSuffixes[sub] ?? []) {
    if (podName?.endsWith(suffix) === true) podName = podName.slice(0, -suffix.length);
  }
  if (podName !== undefined) {
    args.push('--pod-name', podName);
    pgimEnv.POD_NAME = podName;
  }
  if (value('cluster-name') !== undefined) args.push('--cluster-name', value('cluster-name') ?? '');
  if (value('namespace') !== undefined) args.push('--namespace', value('namespace') ?? '');
  if (flags.has('status-port-tls')) args.push('--status-tls');
  if (flags.has('metrics-port-tls')) args.push('--metrics-tls');
  return {
    kind: 'pgim',
    argv: args,
    env: pgimEnv,
    initdbFlags,
    postInitRefsFolders,
    expectations: { clusterName, appDatabase: value('app-db-name'), appUser: value('app-user'), parentNode },
  };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}

function folder(database: keyof PostInitRefsFolders, path: string | undefined): PostInitRefsFolders {
  return path === undefined || path === '' ? {} : { [database]: path };
}
