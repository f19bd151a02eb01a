import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { handFileToServiceUser } from '../env.js';

/**
 * initdb options shared by the floor and Patroni; pgim runs initdb with exactly these itself
 * (src/postgres/instance.ts), so all three data directories start out alike.
 */
export const initdbOptions = [
  '--username=postgres',
  '--auth-local=peer',
  '--auth-host=scram-sha-256',
  '--encoding=UTF8',
  '--lc-collate=C',
  '--lc-ctype=C',
] as const;

/** One `name = 'value'` line per setting, quoted the way postgresql.conf expects. */
export function confLines(settings: Readonly<Record<string, string>>): string {
  return Object.entries(settings)
    .map(([name, value]) => `${name} = '${value.replaceAll("'", "''")}'\n`)
    .join('');
}

/** Writes a file only the service account may read (a password file, a config with passwords). */
export async function writePrivateFile(path: string, text: string): Promise<void> {
  await writeFile(path, text, { mode: 0o600 });
  await handFileToServiceUser(path);
}

/** Appends an include of `bench.conf` to postgresql.conf and writes the settings there. */
export async function writeBenchConf(pgdata: string, settings: Readonly<Record<string, string>>): Promise<void> {
  await writePrivateFile(join(pgdata, 'bench.conf'), confLines(settings));
  await appendFile(join(pgdata, 'postgresql.conf'), "\ninclude 'bench.conf'\n");
}
