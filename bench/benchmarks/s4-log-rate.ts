/**
 * S4: the csvlog line rate pgim relays while PostgreSQL never waits for it. PostgreSQL's backends write each log
 * line into the logging collector's pipe; the collector writes csvlog into pgim's FIFO. When pgim reads too slowly the
 * collector blocks on the FIFO, its own pipe fills, and then backends block in write(2) on it: a database that waits
 * for its log. Both are seen from outside in /proc/PID/wchan (`pipe_write`, `anon_pipe_write`), sampled every millisecond.
 */
import { createReadStream, readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import type pg from 'pg';
import { sleep } from '../env.js';
import { connect } from '../pg.js';
import { livePostmasterPid } from '../proc.js';
import { PgimSystem } from '../systems/pgim.js';
import { join } from 'node:path';
import { footprint } from '../footprint.js';
import { createSystem } from '../systems/index.js';
import type { DatabaseSystem } from '../systems/types.js';
import { rotate, startReadWrite } from './common.js';
import { pointRecorder, repetitions } from './curve-kit.js';
import type { BenchContext, Benchmark, Recorder, RunInfo } from './types.js';

const rates = [2_000, 5_000, 10_000, 20_000, 50_000, 100_000] as const;
const ratesQuick = [1_000, 5_000] as const;
/** Generator sessions (one per vCPU): each runs its share of every slice. */
const generators = 2;
/** Short slices: a 100 ms slice's burst of lines alone would overflow the collector's 64 KiB pipe. */
const sliceMs = 10;
/** About the size of a logged statement: the tag, a counter and text. */
const payload = 'pgim-bench-s4 line % of a paced log load, about as long as a logged statement of an application';

/**
 * Whether the process sleeps writing into a full pipe: its wait channel is `pipe_write`, or `anon_pipe_write` on
 * newer kernels (this machine's, for anonymous pipes and FIFOs alike).
 */
function blockedOnPipe(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/wchan`, 'utf8').endsWith('pipe_write');
  } catch {
    return false;
  }
}

/** The logging collector, a child of the postmaster named `postgres: logger`. */
async function loggerPid(postmaster: number): Promise<number> {
  const children = (await readFile(`/proc/${postmaster}/task/${postmaster}/children`, 'utf8')).trim().split(/\s+/).map(Number);
  for (const pid of children) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    // `postgres: logger` or, with cluster_name set, `postgres: <cluster>: logger`.
    if (cmdline.startsWith('postgres: ') && cmdline.includes(': logger')) return pid;
  }
  throw new Error(`no logging collector among the postmaster's children (${children.join(', ')})`);
}

/** Newlines in bytes [from, to) of a file, streamed (a window can be hundreds of MB). */
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

/** Until the file has not grown for `quietMs`: pgim has relayed what the pipes still held. */
async function settledSize(path: string, quietMs: number, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let size = (await stat(path)).size;
  let stableSince = performance.now();
  while (performance.now() < deadline) {
    await sleep(50);
    const next = (await stat(path)).size;
    if (next !== size) {
      size = next;
      stableSince = performance.now();
    } else if (performance.now() - stableSince >= quietMs) {
      break;
    }
  }
  return size;
}

/** Paces `rate` lines a second over `windowMs` through the generator sessions; resolves with the lines logged. */
async function pacedLoad(clients: readonly pg.Client[], rate: number, windowMs: number): Promise<number> {
  const perSlice = Math.max(1, Math.round((rate * sliceMs) / 1000 / clients.length));
  const slices = Math.round(windowMs / sliceMs);
  const t0 = performance.now();
  const counts = await Promise.all(
    clients.map(async (client) => {
      let lines = 0;
      for (let slice = 0; slice < slices; slice += 1) {
        const wait = t0 + slice * sliceMs - performance.now();
        if (wait > 0) await sleep(wait);
        // Behind schedule (PostgreSQL waited, or the machine is busy): no catching up, the slice is late.
        if (performance.now() - t0 > windowMs) break;
        await client.query(`DO $$ BEGIN FOR i IN 1..${perSlice} LOOP RAISE LOG '${payload}', i; END LOOP; END $$`);
        lines += perSlice;
      }
      return lines;
    }),
  );
  return counts.reduce((a, b) => a + b, 0);
}

/**
 * The logging collector's csvlog as B16 configures it for systems pgim does not manage: the same settings pgim
 * renders for its FIFO, here into the plain file PGDATA/log/postgres.csv.
 */
const floorLogging: Readonly<Record<string, string>> = {
  logging_collector: 'on',
  log_destination: 'csvlog',
  log_directory: 'log',
  log_filename: 'postgres',
  log_rotation_age: '0',
  log_rotation_size: '0',
};

/** One running PostgreSQL with its generator sessions, the PIDs to sample and the file its log lines end up in. */
class LogTarget {
  private constructor(
    readonly system: DatabaseSystem,
    readonly clients: readonly pg.Client[],
    readonly backends: readonly number[],
    readonly logger: number,
    /** pgim: its stdout (JSON lines); the floor: the csvlog file. */
    readonly output: string,
  ) {}

  static async start(context: BenchContext, kind: 'floor' | 'pgim'): Promise<LogTarget> {
    const system = kind === 'pgim' ? await PgimSystem.create(context.systems, { smartShutdownTimeout: 5 }) : await createSystem('floor', context.systems, floorLogging);
    const clients: pg.Client[] = [];
    try {
      await system.initialise();
      await startReadWrite(system);
      for (let i = 0; i < generators; i += 1) clients.push(await connect(system.login, 30_000));
      const backends = await Promise.all(clients.map(async (c) => Number((await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid)));
      const postmaster = await livePostmasterPid(system.pgdata);
      if (postmaster === undefined) throw new Error(`${system.label}: no postmaster`);
      return new LogTarget(system, clients, backends, await loggerPid(postmaster), kind === 'pgim' ? system.logFile : join(system.pgdata, 'log', 'postgres.csv'));
    } catch (err) {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      await system.destroy().catch(() => undefined);
      throw err;
    }
  }

  async measure(recorder: Recorder, rate: number, run: RunInfo, windowMs: number): Promise<void> {
    const { system } = this;
    const pid = system.daemonPid();
    const rss = async (): Promise<number> => (pid === undefined ? NaN : (await footprint(pid)).rssMb);
    const point = pointRecorder(recorder, system.label, 'lines/s offered', rate, run);
    const from = await settledSize(this.output, 300, 60_000);
    let samples = 0;
    let backendBlocked = 0;
    let loggerBlocked = 0;
    let peakRss = await rss();
    const sampler = setInterval(() => {
      samples += 1;
      for (const backend of this.backends) if (blockedOnPipe(backend)) backendBlocked += 1;
      if (blockedOnPipe(this.logger)) loggerBlocked += 1;
    }, 1);
    const rssSampler = setInterval(() => {
      void rss().then((value) => {
        peakRss = Math.max(peakRss, value);
      }, () => undefined);
    }, 100);
    const t0 = performance.now();
    let lines: number;
    try {
      lines = await pacedLoad(this.clients, rate, windowMs);
    } finally {
      clearInterval(sampler);
      clearInterval(rssSampler);
    }
    const elapsed = (performance.now() - t0) / 1000;
    const atEnd = (await stat(this.output)).size;
    const drained = await settledSize(this.output, 1_000, 120_000);
    const inWindow = await countLines(this.output, from, atEnd);
    const total = inWindow + (await countLines(this.output, atEnd, drained));
    point('lines logged per second', lines / elapsed, 'lines/s');
    point('lines relayed per second', inWindow / elapsed, 'lines/s');
    point('lines missing after draining', Math.max(0, lines - total), 'count');
    point('backends blocked on the log pipe (samples)', backendBlocked, 'count');
    point('logging collector blocked writing its csvlog (% of samples)', (100 * loggerBlocked) / Math.max(1, samples), 'count');
    point('wchan samples', samples, 'count', true);
    if (pid !== undefined) point('pgim RSS', peakRss, 'MB');
  }

  async destroy(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.end().catch(() => undefined)));
    await this.system.stop().catch(() => undefined);
    await this.system.destroy();
  }
}

/**
 * Proves the wchan sampling can see a blocked backend at all (a check that cannot fail would prove nothing): pgim
 * is paused (SIGSTOP) for 3 s under 20,000 lines/s, so the pipes fill and the generating backends must block.
 */
async function detectorCheck(target: LogTarget, log: (line: string) => void): Promise<void> {
  const { clients, backends } = target;
  const pid = target.system.daemonPid();
  if (pid === undefined) throw new Error('pgim is not running');
  let blocked = 0;
  const sampler = setInterval(() => {
    for (const backend of backends) if (blockedOnPipe(backend)) blocked += 1;
  }, 1);
  process.kill(pid, 'SIGSTOP');
  const resume = setTimeout(() => process.kill(pid, 'SIGCONT'), 3_000);
  try {
    await pacedLoad(clients, 20_000, 4_000);
  } finally {
    clearTimeout(resume);
    process.kill(pid, 'SIGCONT');
    clearInterval(sampler);
  }
  log(`  S4 detector check: ${blocked} blocked-backend samples while pgim was paused`);
  if (blocked === 0) throw new Error('the wchan sampling saw no blocked backend while pgim was paused: it cannot detect one');
}

export const logRateCurve: Benchmark = {
  id: 'S4',
  title: 'Cost curve: csvlog line rate (pgim only)',
  measures:
    `pgim, and the floor (PostgreSQL's logging collector writing the same csvlog into a plain file, as B16), each with ` +
    `${generators} sessions logging \`RAISE LOG\` lines of ~100 characters (about a logged statement) at a paced rate, in ` +
    `${sliceMs} ms slices, for 5 s per run (2 s with --quick), at ${rates.map((r) => r.toLocaleString('en-US')).join(', ')} ` +
    `lines/s offered (${ratesQuick.map((r) => r.toLocaleString('en-US')).join(', ')} with --quick), systems interleaved. Per ` +
    'rate and run: the lines logged per second (below the offer: PostgreSQL fell behind), the lines that reached the ' +
    'output during the window per second (pgim: JSON lines on its stdout, which the harness appends to a file; floor: ' +
    'the csvlog file), lines missing after draining, the samples (every ~1 ms, /proc/PID/wchan) in which a generating ' +
    'backend was blocked writing into the logging collector\'s pipe (PostgreSQL waiting for its log: the goal is ' +
    'none) and the share in which the collector was blocked writing its csvlog (pgim: into pgim\'s FIFO), and pgim\'s ' +
    'peak RSS during the window. The highest rate with no backend ever blocked is the goal\'s figure. Last, a check ' +
    'that the sampling sees a blocked backend at all: pgim paused (SIGSTOP) for 3 s under 20,000 lines/s must show some.',
  async run(context, recorder) {
    const windowMs = context.quick ? 2_000 : 5_000;
    const kinds = context.kinds.filter((k): k is 'floor' | 'pgim' => k === 'floor' || k === 'pgim');
    if (!kinds.includes('pgim')) return;
    context.note('S4: the floor is PostgreSQL\'s logging collector writing csvlog into a plain file (as B16): where PostgreSQL itself starts to wait.');
    const targets: LogTarget[] = [];
    try {
      for (const kind of kinds) targets.push(await LogTarget.start(context, kind));
      for (const rate of context.quick ? ratesQuick : rates) {
        context.log(`  S4: ${rate} lines/s offered`);
        for (const run of repetitions(context)) {
          for (const target of rotate(targets, run.index)) await target.measure(recorder, rate, run, windowMs);
        }
      }
      const pgim = targets.find((t) => t.system instanceof PgimSystem);
      if (pgim !== undefined) await detectorCheck(pgim, (line) => {
          context.log(line);
        });
    } finally {
      for (const target of targets) await target.destroy();
    }
  },
};
