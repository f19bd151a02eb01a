import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ExternalCluster } from '../cluster/external-clusters.js';
import type { ControlPlane } from '../controlplane/index.js';
import { ConfigError } from '../errors/index.js';
import { readSecretKey } from '../credentials/secret-key.js';
import { ensureDirectory, writeFileAtomic } from '../fs/atomic.js';
import { escapePassfileField } from '../render/pgpass.js';
import { conninfoValue } from './conninfo.js';

/**
 * How pgim reaches an `externalClusters` entry (CNPG's `external.ConfigureConnectionToServer`): its
 * connectionParameters, and the Secrets it names written as files in the runtime dir (0600, as libpq demands of a
 * key), so no secret is ever on a command line, in the environment of postgres or in a log line: the conninfo
 * names files only (sslkey, sslcert, sslrootcert, passfile).
 */
export interface ExternalConnection {
  readonly name: string;
  /** The entry's place in the manifest, for errors (`spec.externalClusters[0]`). */
  readonly field: string;
  /** Safe to log: paths, never a secret. */
  readonly conninfo: string;
  /** The folder the files below live in. */
  readonly directory: string;
  /** Absolute path -> bytes, each written 0600. */
  readonly files: ReadonlyMap<string, Buffer>;
}

/** `<runtime>/external/<index>-<name>`: one folder per entry; the index keeps two similar names apart. */
export function externalDirectory(runtimeRoot: string, entry: ExternalCluster): string {
  const index = /\[(\d+)\]$/.exec(entry.field)?.[1] ?? '0';
  return join(runtimeRoot, 'external', `${index}-${entry.name.replace(/[^A-Za-z0-9_.-]/g, '_')}`);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Reads the Secrets an entry names (errors name the Secret, key and field, never a value) and builds its conninfo. */
export async function loadExternalConnection(controlPlane: ControlPlane, entry: ExternalCluster, runtimeRoot: string): Promise<ExternalConnection> {
  const directory = externalDirectory(runtimeRoot, entry);
  const files = new Map<string, Buffer>();
  const parameters: Record<string, string> = { ...entry.connectionParameters };
  const material: [keyof ExternalCluster & ('sslKey' | 'sslCert' | 'sslRootCert'), string, string][] = [
    ['sslKey', 'sslkey', 'client.key'],
    ['sslCert', 'sslcert', 'client.crt'],
    ['sslRootCert', 'sslrootcert', 'root.crt'],
  ];
  for (const [field, keyword, file] of material) {
    const ref = entry[field];
    if (ref === undefined) continue;
    const path = join(directory, file);
    files.set(path, await readSecretKey(controlPlane, ref, `${entry.field}.${field}`));
    parameters[keyword] = path;
  }
  if (entry.password !== undefined) {
    const field = `${entry.field}.password`;
    const bytes = await readSecretKey(controlPlane, entry.password, field);
    let password: string;
    try {
      password = utf8.decode(bytes).replace(/\r?\n$/, '');
    } catch {
      throw new ConfigError(`secret ${entry.password.name}`, entry.password.key, `is not valid UTF-8 (named by ${field})`);
    }
    if (/[\r\n\0]/.test(password)) throw new ConfigError(`secret ${entry.password.name}`, entry.password.key, `contains a line break or NUL (named by ${field})`);
    const path = join(directory, 'pgpass');
    files.set(path, Buffer.from(`*:*:*:*:${escapePassfileField(password)}\n`, 'utf8'));
    parameters.passfile = path;
  }
  // CNPG's CreateConnectionString: keys sorted, so the same entry always gives the same conninfo.
  const conninfo = Object.keys(parameters)
    .sort()
    .map((key) => `${key}=${conninfoValue(parameters[key] ?? '')}`)
    .join(' ');
  return { name: entry.name, field: entry.field, conninfo, directory, files };
}

/** Writes an entry's files (0600 in a 0700 folder); true when any changed. */
export async function writeExternalFiles(connection: ExternalConnection): Promise<boolean> {
  await ensureDirectory(join(connection.directory, '..'), 0o700);
  await ensureDirectory(connection.directory, 0o700);
  let changed = false;
  for (const [path, bytes] of connection.files) changed = (await writeFileAtomic(path, bytes, 0o600)).changed || changed;
  return changed;
}

/** Removes every entry's files (a new cluster once cloned, a replica cluster once promoted). */
export async function removeExternalFiles(runtimeRoot: string): Promise<void> {
  await rm(join(runtimeRoot, 'external'), { recursive: true, force: true });
}
