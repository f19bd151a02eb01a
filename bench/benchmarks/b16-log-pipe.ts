import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { sleep } from '../env.js';
import { footprint } from '../footprint.js';
import { pgbenchRun } from '../pgbench.js';
import type { DatabaseSystem, SystemKind } from '../systems/types.js';
import { initialiseAll, interleave, since, startWithPgbenchTables, withSystems } from './common.js';
import type { Benchmark } from './types.js';

/**
 * Every system logs every statement through PostgreSQL's logging collector as csvlog: pgim renders exactly these
 * (into its FIFO, parsed and re-emitted as JSON on stdout, which the harness sends to a file); the floor and Patroni
 * get the same settings and write a plain file, PGDATA/log/postgres.csv.
 */
const loggingParameters: Readonly<Record<string, string>> = {
  log_statement: 'all',
  logging_collector: 'on',
  log_destination: 'csvlog',
  log_directory: 'log',
  log_filename: 'postgres',
  log_rotation_age: '0',
  log_rotation_size: '0',
};

/** log_statement is all a Cluster manifest may set; pgim fixes the rest (and already sets them this way). */
const pgimParameters = { log_statement: 'all' };

/** The managers that render the logging collector themselves and re-emit its csvlog as JSON on their stdout. */
function rendersCollector(kind: SystemKind): boolean {
  return kind === 'pgim' || kind === 'pgim-k8s' || kind === 'cnpg';
}

const scale = 10;
const clients = ['-c', '4', '-j', '2'];

async function sizeOf(path: string): Promise<number> {
  return (await stat(path)).size;
}

/** Lines (newlines) in bytes [from, to) of a file, read as a stream: the window's output can be 100 MB. */
function countLines(path: string, from: number, to: number): Promise<number> {
  if (to <= from) return Promise.resolve(0);
  return new Promise((resolve, reject) => {
    let lines = 0;
    createReadStream(path, { start: from, end: to - 1 })
      .on('data', (chunk: Buffer | string) => {
        const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        for (let at = buffer.indexOf(10); at !== -1; at = buffer.indexOf(10, at + 1)) lines += 1;
      })
      .once('error', reject)
      .once('end', () => {
        resolve(lines);
      });
  });
}

/** Until the file has not grown for 300 ms (pgim has re-emitted what the FIFO still held); its final size. */
async function settledSize(path: string, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let size = await sizeOf(path);
  let stableSince = performance.now();
  while (performance.now() < deadline) {
    await sleep(50);
    const next = await sizeOf(path);
    if (next !== size) {
      size = next;
      stableSince = performance.now();
    } else if (performance.now() - stableSince >= 300) {
      break;
    }
  }
  return size;
}

export const logPipeBenchmark: Benchmark = {
  id: 'B16',
  title: 'Log pipe throughput under pgbench with log_statement = all',
  measures:
    'Every system runs with `log_statement = \'all\'` and the logging collector writing csvlog (pgim: into its FIFO, ' +
    'parsed and re-emitted as JSON lines on stdout, which the harness appends to a file on disk; floor and Patroni: ' +
    'the plain file PGDATA/log/postgres.csv, same settings). After `pgbench -i -s 10`, each run gives every system ' +
    'in turn a `pgbench -S -n -c 4 -j 2 -T 15` window (5 s with --quick): TPS (without connection time), and for ' +
    'pgim the JSON lines its stdout gained during the window per second, the lines per transaction once it has ' +
    'drained, per 1000 transactions (1 statement line each, so about 1000; less means lines were lost), and the ' +
    "manager's own CPU time (utime + stime, from the window's start until its output settled) per 1000 lines.",
  async run(context, recorder) {
    const seconds = context.quick ? 5 : 15;
    await withSystems(
      context,
      async (systems) => {
        await initialiseAll(context, systems);
        try {
          await startWithPgbenchTables(context, systems, scale);
          await interleave(context, systems, async (system: DatabaseSystem, run) => {
            // pgim and CloudNativePG's manager both read the collector's csvlog from a FIFO and re-emit JSON on stdout.
            const pgimOutput = rendersCollector(system.kind) ? system.logFile : undefined;
            const before = pgimOutput === undefined ? 0 : await sizeOf(pgimOutput);
            // The manager's own CPU while it relays (utime + stime): what the log pipe takes from PostgreSQL's cores.
            const daemon = system.daemonPid();
            const cpuBefore = daemon === undefined ? undefined : (await footprint(daemon)).cpuMs;
            const t0 = performance.now();
            const result = await pgbenchRun(
              context.systems.processes,
              system.login,
              ['-S', '-n', ...clients, '-T', String(seconds)],
              join(context.systems.workDir, `pgbench-${system.label}.log`),
              (seconds + 120) * 1_000,
            );
            const elapsed = since(t0);
            recorder.add(system.label, 'pgbench -S TPS', run, result.tps, 'tx/s');
            if (pgimOutput !== undefined) {
              const atExit = await sizeOf(pgimOutput);
              const drained = await settledSize(pgimOutput, 60_000);
              const cpuMs = daemon === undefined || cpuBefore === undefined ? undefined : (await footprint(daemon)).cpuMs - cpuBefore;
              const inWindow = await countLines(pgimOutput, before, atExit);
              const total = inWindow + (await countLines(pgimOutput, atExit, drained));
              if (cpuMs !== undefined && total > 0) {
                recorder.add(system.label, 'manager CPU per 1000 lines relayed (window and drain)', run, (1000 * cpuMs) / total, 'ms');
              }
              recorder.add(system.label, 'JSON lines re-emitted per second (during the window)', run, inWindow / (elapsed / 1000), 'lines/s');
              recorder.add(system.label, 'JSON lines per 1000 pgbench transactions (drained)', run, (1000 * total) / result.transactions, 'count');
            }
          });
        } finally {
          for (const system of systems) await system.stop().catch(() => undefined);
        }
      },
      context.kinds,
      // The floor and Patroni get every logging setting; pgim renders the collector part itself.
      (kind) => (rendersCollector(kind) ? pgimParameters : loggingParameters),
    );
  },
};
