import { startBenchmark } from './b1-start.js';
import { timelineBenchmark } from './b13-timelines.js';
import { bootstrapBenchmark } from './b14-bootstrap.js';
import { shutdownBenchmark } from './b2-shutdown.js';
import { footprintBenchmark } from './b3-footprint.js';
import { statusEndpointBenchmark } from './b4-status.js';
import { crashBenchmark } from './b6-crash.js';
import type { Benchmark } from './types.js';

/** In the order of the benchmark plan (peers-and-benchmarks.md section 4). */
export const benchmarks: readonly Benchmark[] = [
  startBenchmark,
  shutdownBenchmark,
  footprintBenchmark,
  statusEndpointBenchmark,
  crashBenchmark,
  timelineBenchmark,
  bootstrapBenchmark,
];
