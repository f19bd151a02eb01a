import { startBenchmark } from './b1-start.js';
import { configChangeBenchmark } from './b10-config-change.js';
import { certRotationBenchmark } from './b11-cert-rotation.js';
import { passwordRotationBenchmark } from './b12-password.js';
import { probeUnderLoadBenchmark } from './b15-probe-load.js';
import { logPipeBenchmark } from './b16-log-pipe.js';
import { archiveBenchmark } from './b17-archive.js';
import { baseBackupBenchmark } from './b18-base-backup.js';
import { restoreBenchmark } from './b19-restore.js';
import { timelineBenchmark } from './b13-timelines.js';
import { bootstrapBenchmark } from './b14-bootstrap.js';
import { shutdownBenchmark } from './b2-shutdown.js';
import { footprintBenchmark } from './b3-footprint.js';
import { kubernetesFootprintBenchmark } from './b3k-kubernetes.js';
import { statusEndpointBenchmark } from './b4-status.js';
import { scrapeBenchmark } from './b5-scrape.js';
import { crashBenchmark } from './b6-crash.js';
import { backendCrashBenchmark } from './b7-backend-crash.js';
import { switchoverBenchmark } from './b8-switchover.js';
import { synchronousFailoverBenchmark, synchronousTpsBenchmark } from './b20-synchronous.js';
import { daemonKillBenchmark } from './b9-daemon-kill.js';
import { databasesCurve, tablesCurve } from './s1-s2-catalog.js';
import { connectionsCurve } from './s3-connections.js';
import { logRateCurve } from './s4-log-rate.js';
import { replicasCurve } from './s5-replicas.js';
import type { Benchmark } from './types.js';

/** In the order of the benchmark plan (peers-and-benchmarks.md section 4). */
export const benchmarks: readonly Benchmark[] = [
  startBenchmark,
  shutdownBenchmark,
  footprintBenchmark,
  kubernetesFootprintBenchmark,
  statusEndpointBenchmark,
  scrapeBenchmark,
  crashBenchmark,
  backendCrashBenchmark,
  switchoverBenchmark,
  daemonKillBenchmark,
  configChangeBenchmark,
  certRotationBenchmark,
  passwordRotationBenchmark,
  timelineBenchmark,
  bootstrapBenchmark,
  probeUnderLoadBenchmark,
  logPipeBenchmark,
  archiveBenchmark,
  baseBackupBenchmark,
  restoreBenchmark,
  synchronousTpsBenchmark,
  synchronousFailoverBenchmark,
  // Issue 22's cost curves.
  databasesCurve,
  tablesCurve,
  connectionsCurve,
  logRateCurve,
  replicasCurve,
];
