import type { SystemContext } from '../systems/context.js';
import type { SystemKind } from '../systems/types.js';

export const benchmarkIds = ['B1', 'B2', 'B3', 'B3k', 'B4', 'B5', 'B6', 'B7', 'B8', 'B9', 'B10', 'B11', 'B12', 'B13', 'B14', 'B15', 'B16', 'B17', 'B18', 'B19', 'B20', 'B21', 'S1', 'S2', 'S3', 'S4', 'S5'] as const;
export type BenchmarkId = (typeof benchmarkIds)[number];

export type Unit = 'ms' | 'MB' | 'count' | 'req/s' | 'tx/s' | 'lines/s' | 'threads';

/** One measured value. Warm-up samples are kept in the JSON but left out of every statistic. */
export interface Sample {
  benchmark: BenchmarkId;
  metric: string;
  system: string;
  /** 1..N for measured runs, 0 for the warm-up. */
  run: number;
  warmup: boolean;
  value: number;
  unit: Unit;
  /** Kept in the JSON only, not in the summary table (e.g. p50 next to p99, or a random delay). */
  detail?: boolean;
}

export interface RunInfo {
  index: number;
  warmup: boolean;
}

export interface BenchContext {
  readonly kinds: readonly SystemKind[];
  readonly runs: number;
  readonly warmup: boolean;
  /** Shorter idle and load windows (the smoke test); figures are then only indicative. */
  readonly quick: boolean;
  readonly systems: SystemContext;
  log(line: string): void;
  /** A sentence for the report about how this run measured something. */
  note(text: string): void;
}

export interface Recorder {
  add(system: string, metric: string, run: RunInfo, value: number, unit: Unit, options?: { detail?: boolean }): void;
}

export interface Benchmark {
  id: BenchmarkId;
  title: string;
  /** What exactly is timed or counted, for the README and the report. */
  measures: string;
  run(context: BenchContext, recorder: Recorder): Promise<void>;
}
