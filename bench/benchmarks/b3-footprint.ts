import { sleep } from '../env.js';
import type { Footprint } from '../footprint.js';
import { httpStatus } from '../http-load.js';
import { footprintOf, withRunningDaemons, type RunningDaemon } from './daemons.js';
import type { BenchContext, Benchmark, Recorder } from './types.js';

export const footprintBenchmark: Benchmark = {
  id: 'B3',
  title: 'Idle footprint of the manager process',
  measures:
    "The manager's own process (pgim's node, Patroni's python; the floor is a bare Node http server) after an idle " +
    'settling window: VmRSS, Pss from /proc/PID/smaps_rollup, threads, and CPU time used during each following idle ' +
    'window, with one metrics scrape every 30 s (pgim :9187/metrics, Patroni /metrics; what Prometheus does). All ' +
    'systems idle at the same time; each run is one more window. PostgreSQL itself is not counted.',
  async run(context, recorder) {
    await withRunningDaemons(context, (daemons) => measureIdleFootprints(context, recorder, daemons));
  },
};

/**
 * The idle measure of B3 (and B3k): a settling window, then `context.runs` windows in which every daemon idles at
 * the same time, scraped every 30 s; RSS, PSS and threads at each window's end, CPU used within it.
 */
export async function measureIdleFootprints(context: BenchContext, recorder: Recorder, daemons: readonly RunningDaemon[], id = 'B3'): Promise<void> {
  const windowMs = context.quick ? 2_000 : 60_000;
  context.note(`${id}: ${windowMs / 1000} s settling, then ${context.runs} consecutive idle windows of ${windowMs / 1000} s; CPU is per window.`);
  const scrapes = scrapeEvery(scrapeIntervalMs, daemons.flatMap((daemon) => (daemon.endpoints.metrics === undefined ? [] : [daemon.endpoints.metrics])));
  try {
    context.log(`  settling for ${windowMs / 1000} s`);
    await sleep(windowMs);
    for (let index = 1; index <= context.runs; index += 1) {
      const run = { index, warmup: false };
      const before = new Map<string, Footprint>();
      for (const daemon of daemons) before.set(daemon.label, await footprintOf(daemon));
      context.log(`  window ${index}/${context.runs}`);
      await sleep(windowMs);
      for (const daemon of daemons) {
        const now = await footprintOf(daemon);
        const cpuMs = now.cpuMs - (before.get(daemon.label)?.cpuMs ?? now.cpuMs);
        recorder.add(daemon.label, 'RSS', run, now.rssMb, 'MB');
        recorder.add(daemon.label, 'PSS', run, now.pssMb, 'MB');
        recorder.add(daemon.label, 'threads', run, now.threads, 'threads');
        recorder.add(daemon.label, `CPU per ${windowMs / 1000} s idle`, run, cpuMs, 'ms');
      }
    }
  } finally {
    scrapes.stop();
  }
}

const scrapeIntervalMs = 30_000;

/** One GET of each URL now and every `intervalMs`, as a Prometheus server would scrape; failures are ignored here. */
function scrapeEvery(intervalMs: number, urls: readonly string[]): { stop(): void } {
  const scrape = (): void => {
    for (const url of urls) void httpStatus(url, 5_000);
  };
  scrape();
  const timer = setInterval(scrape, intervalMs);
  return {
    stop: () => {
      clearInterval(timer);
    },
  };
}
