import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigError, errorMessage } from '../errors/index.js';
import { clusterManifestSchema, resolveCluster, type Cluster } from './schema.js';

/** `spec.postgresql.pg_hba[2]`: the path style of `kubectl explain` and CNPG's webhook messages. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

function firstIssue(error: z.ZodError): ConfigError {
  const issue = error.issues[0];
  if (!issue) return new ConfigError('', '', 'invalid');
  const isMissing = issue.code === 'invalid_type' && issue.input === undefined;
  return new ConfigError('', fieldPath(issue.path), isMissing ? 'is required' : issue.message);
}

/**
 * Parses and validates a Cluster manifest. `source` names the file in every error, so a user can find the line.
 * Throws ConfigError.
 */
export function parseClusterManifest(text: string, source: string): Cluster {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter });
  const syntaxError = doc.errors[0];
  if (syntaxError) {
    const { line, col } = lineCounter.linePos(syntaxError.pos[0]);
    throw new ConfigError(source, '', `invalid YAML at line ${line}, column ${col}: ${syntaxError.code}`);
  }
  let value: unknown;
  try {
    // An alias bomb ("billion laughs") stops here, after 100 alias expansions, instead of exhausting memory.
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError(source, '', `YAML aliases cannot be expanded: ${errorMessage(err)}`);
  }
  const parsed = clusterManifestSchema.safeParse(value, { reportInput: true });
  if (!parsed.success) {
    const issue = firstIssue(parsed.error);
    throw new ConfigError(source, issue.field, issue.problem);
  }
  return resolveCluster(parsed.data, source);
}
