/** The outcome of one barman-cloud tool run. */
export interface ToolResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Barman Cloud's tools, on PATH (Debian's barman-cli-cloud) unless PGIM_BARMAN_BIN names their folder. */
export function barmanTool(name: string): string {
  const dir = process.env.PGIM_BARMAN_BIN;
  return dir === undefined || dir === '' ? name : `${dir}/${name}`;
}

/**
 * Runs a tool with `env` added to the inherited environment. Secrets travel only in `env`; `args` are safe to log.
 * Output is captured (bounded) for parsing and for error messages. Never throws for a non-zero exit.
 */
export async function runTool(
  name: string,
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  options: { cwd?: string; signal?: AbortSignal; maxOutputBytes?: number } = {},
): Promise<ToolResult> {
  // execa, as every external tool pgim runs; imported on first use (no logger here: wal-archive starts per segment).
  const { execa } = await import('execa');
  const result = await execa(barmanTool(name), args, {
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    env: { ...process.env, ...env },
    extendEnv: false,
    stdin: 'ignore',
    reject: false,
    cleanup: false,
    maxBuffer: options.maxOutputBytes ?? 4 * 1024 * 1024,
    ...(options.signal === undefined ? {} : { cancelSignal: options.signal }),
  });
  if (result.failed && result.exitCode === undefined && result.signal === undefined) {
    throw new Error(`${name} could not be started: ${result.shortMessage}`);
  }
  return { code: result.exitCode ?? 128, stdout: result.stdout, stderr: result.stderr };
}

/** The last meaningful line of a tool's stderr: what a user needs to see (`ERROR: ...`). */
export function toolError(name: string, result: ToolResult): string {
  const lines = result.stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const last = lines.findLast((l) => /error|fail|refus|denied|expected/i.test(l)) ?? lines.at(-1) ?? '';
  return `${name} exited with code ${result.code}${last === '' ? '' : `: ${last.slice(0, 500)}`}`;
}
