import { sleep } from '../env.js';
import { runLoad } from '../http-load.js';
import { maximum, percentile } from '../stats.js';
import { rotate, schedule } from './common.js';
import { withRunningDaemons } from './daemons.js';
import type { Benchmark } from './types.js';

const concurrencies = [1, 8, 32] as const;
const modes = [
  { name: 'fresh', keepAlive: false },
  { name: 'keep-alive', keepAlive: true },
] as const;
const endpointKinds = [
  { name: 'readiness', pick: 'readiness' },
  { name: 'status JSON', pick: 'statusDocument' },
] as const;

export const statusEndpointBenchmark: Benchmark = {
  id: 'B4',
  title: 'Status endpoint latency and throughput',
  measures:
    'Closed-loop Node http clients (1, 8, 32 at once) for a fixed time per cell, each with a new TCP connection per ' +
    'request (fresh, like kubelet probes) or one kept-alive connection: requests/s, p50, p99 and max latency. ' +
    '"readiness" is pgim /readyz vs Patroni /health; "status JSON" is pgim /pg/status vs Patroni /patroni; the floor ' +
    'is a bare Node http server answering fixed JSON.',
  async run(context, recorder) {
    const durationMs = context.quick ? 500 : 2_000;
    context.note(`B4: ${durationMs / 1000} s per cell (endpoint x clients x connection mode), systems interleaved per cell.`);
    await withRunningDaemons(context, async (daemons) => {
      for (const run of schedule(context)) {
        context.log(`  run ${run.warmup ? 'warm-up' : `${run.index}/${context.runs}`}`);
        for (const endpoint of endpointKinds) {
          for (const mode of modes) {
            for (const concurrency of concurrencies) {
              const cell = `${endpoint.name} c=${concurrency} ${mode.name}`;
              for (const daemon of rotate(daemons, run.index)) {
                const result = await runLoad(daemon.endpoints[endpoint.pick], { concurrency, durationMs, keepAlive: mode.keepAlive });
                const all = result.latencies;
                const answered = all.length - result.errors;
                recorder.add(daemon.label, `${cell}: req/s`, run, (answered * 1000) / result.elapsedMs, 'req/s');
                if (all.length > 0) {
                  recorder.add(daemon.label, `${cell}: p50`, run, percentile(all, 50), 'ms', { detail: true });
                  recorder.add(daemon.label, `${cell}: p99`, run, percentile(all, 99), 'ms');
                  recorder.add(daemon.label, `${cell}: max`, run, maximum(all), 'ms');
                  recorder.add(daemon.label, `${cell}: requests over 100 ms`, run, all.filter((ms) => ms > 100).length, 'count', { detail: true });
                }
                recorder.add(daemon.label, `${cell}: errors`, run, result.errors, 'count', { detail: true });
                // Let sockets in TIME_WAIT and the previous server's backlog drain before the next cell.
                await sleep(200);
              }
            }
          }
        }
      }
    });
  },
};
