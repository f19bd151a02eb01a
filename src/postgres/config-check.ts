import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { RenderedConfiguration } from '../render/index.js';
import { runTool } from './tools.js';
import type pg from 'pg';

/**
 * Asks PostgreSQL itself whether a render would load, before a byte of it reaches PGDATA: `postgres -C` parses a
 * staged copy of custom.conf and override.conf (names, types, ranges, units) and exits non-zero on any error.
 * Returns PostgreSQL's own messages; empty when the render is accepted.
 */
export async function checkRenderedSettings(
  binDir: string,
  stagingParent: string,
  rendered: RenderedConfiguration,
  logger: Logger,
  runAs?: { uid: number; gid: number },
): Promise<string[]> {
  const dir = await mkdtemp(join(stagingParent, 'config-check-'));
  try {
    const staged: [string, string][] = [
      ['postgresql.conf', "include 'custom.conf'\ninclude 'override.conf'\n"],
      ['custom.conf', rendered.customConf],
      ['override.conf', rendered.overrideConf],
    ];
    for (const [name, text] of staged) await writeFile(join(dir, name), text, { mode: 0o600 });
    if (runAs !== undefined) {
      for (const path of [dir, ...staged.map(([name]) => join(dir, name))]) await chown(path, runAs.uid, runAs.gid);
    }
    const result = await runTool(binDir, 'postgres', ['-D', dir, '-c', `config_file=${join(dir, 'postgresql.conf')}`, '-C', 'port'], {
      logger,
      captureStdout: true,
      captureStderr: true,
      env: { ...process.env, LC_MESSAGES: 'C' },
      timeoutMs: 30_000,
      ...(runAs === undefined ? {} : { runAs }),
    });
    if (result.exitCode === 0) return [];
    const problems = result.stderr
      .split('\n')
      .map((line) => /(?:LOG|FATAL|ERROR):\s+(.*)$/.exec(line)?.[1])
      .filter((message): message is string => message !== undefined)
      .filter((message) => !message.startsWith('skipping missing configuration file') && !message.includes('contains errors'));
    return problems.length > 0 ? problems.map((p) => p.replaceAll(dir, '<staged>')) : ['PostgreSQL rejected the configuration'];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The settings pgim derives from who the primary is, each formatted by pgim itself (and the render hashes). */
const topologySettings: ReadonlySet<string> = new Set([
  'primary_conninfo',
  'primary_slot_name',
  'synchronous_standby_names',
  'pgim.config_sha256',
  'pgim.cluster_config_sha256',
]);

/** `name = value` lines by name; undefined when a line is something else (then nothing is assumed). */
function settingLines(text: string): Map<string, string> | undefined {
  const settings = new Map<string, string>();
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const match = /^([A-Za-z_][A-Za-z0-9_.$]*)\s*=\s*(.*)$/.exec(trimmed);
    if (match?.[1] === undefined || match[2] === undefined) return undefined;
    settings.set(match[1].toLowerCase(), match[2]);
  }
  return settings;
}

/**
 * Whether a render differs from the files PostgreSQL already accepted only in the settings that follow the primary
 * (a switchover or failover elsewhere in the cluster): those values are pgim's own formatting, so the staged
 * `postgres -C` run can be skipped on a running server, whose written files PostgreSQL still checks before the
 * reload (fileOracleErrors). A failover waits for this replica to follow the new primary.
 */
export function onlyTopologySettingsChanged(accepted: string, rendered: string): boolean {
  const before = settingLines(accepted);
  const after = settingLines(rendered);
  if (before === undefined || after === undefined) return false;
  for (const name of new Set([...before.keys(), ...after.keys()])) {
    if (before.get(name) !== after.get(name) && !topologySettings.has(name)) return false;
  }
  return true;
}

/**
 * PostgreSQL's views over the files on disk, read after writing and before relying on them: a setting, hba rule or
 * ident mapping it cannot use shows up here with its error.
 */
export async function fileOracleErrors(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ problem: string }>(`
    SELECT format('%s line %s: %s', sourcefile, sourceline, error) AS problem
      FROM pg_file_settings
     WHERE error IS NOT NULL
       -- a value that waits for a restart is pending_restart, not a refusal
       AND error <> 'setting could not be applied' AND error NOT LIKE '%cannot be changed without restarting the server%'
    UNION ALL
    SELECT format('pg_hba.conf line %s: %s', line_number, error) FROM pg_hba_file_rules
     WHERE error IS NOT NULL
       -- hba.c flags hostssl/hostgssenc lines it cannot use yet (ssl off) but still loads them: a warning
       AND error NOT LIKE '%record cannot match because%'
    UNION ALL
    SELECT format('pg_ident.conf line %s: %s', line_number, error) FROM pg_ident_file_mappings WHERE error IS NOT NULL`);
  return rows.map((r) => r.problem);
}
