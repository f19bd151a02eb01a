import type { Logger } from 'pino';
import { runTool } from './tools.js';

export interface ControlData {
  clusterState: string;
  timeline: number | undefined;
  systemIdentifier: string | undefined;
  walSegmentBytes: number | undefined;
  raw: string;
}

/** `pg_controldata` parsed; undefined when PGDATA holds no valid control file. */
export async function readControlData(binDir: string, pgdata: string, logger: Logger): Promise<ControlData | undefined> {
  const result = await runTool(binDir, 'pg_controldata', ['-D', pgdata], {
    logger,
    captureStdout: true,
    env: { ...process.env, LC_ALL: 'C' },
    timeoutMs: 10_000,
  });
  if (result.exitCode !== 0) return undefined;
  const field = (label: string): string | undefined =>
    result.stdout.split('\n').find((line) => line.startsWith(`${label}:`))?.slice(label.length + 1).trim();
  const timeline = field("Latest checkpoint's TimeLineID");
  return {
    clusterState: field('Database cluster state') ?? 'unknown',
    timeline: timeline === undefined ? undefined : Number(timeline),
    systemIdentifier: field('Database system identifier'),
    walSegmentBytes: field('Bytes per WAL segment') === undefined ? undefined : Number(field('Bytes per WAL segment')),
    raw: result.stdout,
  };
}
