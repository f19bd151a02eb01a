import type { ControlPlane } from '../controlplane/index.js';
import { errorMessage } from '../errors/index.js';
import type { MonitoringSpec, QueriesSource } from '../cluster/observability.js';
import { alwaysQueriesYaml, defaultQueriesYaml } from './default-queries.js';
import { mergeQueries, parseQueries, type QueryDefinition } from './queries-parser.js';

export interface SourceError {
  /** `configmap <name>/<key>`, `secret <name>/<key>`, or `pgim default queries`. */
  readonly source: string;
  readonly message: string;
}

export interface LoadedQueries {
  readonly queries: readonly QueryDefinition[];
  /** Sources or single queries that could not be used; everything else still runs. */
  readonly errors: readonly SourceError[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function describe(source: QueriesSource): string {
  return `${source.kind} ${source.name}/${source.key}`;
}

async function readSource(controlPlane: ControlPlane, source: QueriesSource): Promise<string> {
  const data = source.kind === 'configmap' ? await controlPlane.readConfigMap(source.name) : await controlPlane.readSecret(source.name);
  if (!data) throw new Error('does not exist');
  const bytes = data.get(source.key);
  if (!bytes) throw new Error(`has no key ${source.key}`);
  try {
    return utf8.decode(bytes);
  } catch {
    throw new Error('is not valid UTF-8');
  }
}

/**
 * The query set for a monitoring spec, CNPG's order: the always-injected `collector` query, pgim's defaults (unless
 * `disableDefaultQueries`), then each ConfigMap, then each Secret; a later query with the same name replaces an
 * earlier one. A source that cannot be read or parsed is reported and skipped, never fatal.
 */
export async function loadQueries(controlPlane: ControlPlane, monitoring: MonitoringSpec): Promise<LoadedQueries> {
  const sets: QueryDefinition[][] = [];
  const errors: SourceError[] = [];
  const add = (text: string, source: string): void => {
    try {
      const parsed = parseQueries(text, source);
      sets.push(parsed.queries);
      for (const e of parsed.errors) errors.push({ source, message: e.message });
    } catch (err) {
      errors.push({ source, message: errorMessage(err) });
    }
  };
  add(alwaysQueriesYaml, 'pgim built-in queries');
  if (!monitoring.disableDefaultQueries) add(defaultQueriesYaml, 'pgim default queries');
  for (const source of monitoring.customQueries) {
    const name = describe(source);
    try {
      add(await readSource(controlPlane, source), name);
    } catch (err) {
      errors.push({ source: name, message: `${name}: ${errorMessage(err)}` });
    }
  }
  return { queries: mergeQueries(sets), errors };
}
