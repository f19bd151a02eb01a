import { join } from 'node:path';
import { sleep } from '../env.js';
import { waitReadWrite } from '../pg.js';
import { pgbenchInit } from '../pgbench.js';
import { livePostmasterPid, signalPid, waitGone } from '../proc.js';
import { createSystem } from '../systems/index.js';
import type { DatabaseSystem, SystemKind } from '../systems/types.js';
import type { BenchContext, RunInfo } from './types.js';

/** The warm-up (index 0, when enabled), then runs 1..N. */
export function schedule(context: BenchContext): RunInfo[] {
  const runs: RunInfo[] = context.warmup ? [{ index: 0, warmup: true }] : [];
  for (let index = 1; index <= context.runs; index += 1) runs.push({ index, warmup: false });
  return runs;
}

/** `items` rotated by `shift`, so across runs every system goes first equally often (noise is shared out). */
export function rotate<T>(items: readonly T[], shift: number): T[] {
  if (items.length === 0) return [];
  const k = shift % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/** Runs `body` for each run and each system, systems interleaved within a run. */
export async function interleave<S>(
  context: BenchContext,
  systems: readonly S[],
  body: (system: S, run: RunInfo) => Promise<void>,
): Promise<void> {
  for (const run of schedule(context)) {
    context.log(`  run ${run.warmup ? 'warm-up' : `${run.index}/${context.runs}`}`);
    for (const system of rotate(systems, run.index)) await body(system, run);
  }
}

/** Creates one instance per selected kind (or `kinds`), hands them to `body`, and always destroys them. */
export async function withSystems<T>(
  context: BenchContext,
  body: (systems: DatabaseSystem[]) => Promise<T>,
  kinds: readonly SystemKind[] = context.kinds,
  /** PostgreSQL settings a benchmark adds, per kind (pgim refuses the ones it controls itself). */
  parametersFor: (kind: SystemKind) => Readonly<Record<string, string>> = () => ({}),
): Promise<T> {
  const systems: DatabaseSystem[] = [];
  try {
    for (const kind of kinds) systems.push(await createSystem(kind, context.systems, parametersFor(kind)));
    return await body(systems);
  } finally {
    for (const system of systems) await system.destroy().catch((err: unknown) => {
      context.log(`  cleanup of ${system.label} failed: ${err instanceof Error ? err.message : String(err)}`);
    });
  }
}

export async function initialiseAll(context: BenchContext, systems: readonly DatabaseSystem[]): Promise<void> {
  for (const system of systems) {
    context.log(`  initialising ${system.label}`);
    await system.initialise();
  }
}

/**
 * Starts and waits until read-write and until the start command has returned: a stop issued while `pg_ctl start -w`
 * is still polling makes pg_ctl report a failed start.
 */
export async function startReadWrite(system: DatabaseSystem): Promise<void> {
  const started = await system.start();
  await waitReadWrite(system.login, 120_000);
  await started.commandDone;
}

/** Starts every system read-write, one after the other, and gives each pgbench's tables at `scale`. */
export async function startWithPgbenchTables(context: BenchContext, systems: readonly DatabaseSystem[], scale: number): Promise<void> {
  for (const system of systems) {
    await startReadWrite(system);
    context.log(`  pgbench -i -s ${scale} on ${system.label}`);
    await pgbenchInit(context.systems.processes, system.login, scale, join(context.systems.workDir, `pgbench-${system.label}.log`));
  }
}

/** Marks a promise that is awaited later as handled, so an early failure elsewhere cannot make it "unhandled". */
export function awaitedLater<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

/** Rejects when `promise` rejects, never resolves: races a background step's failure against a poll. */
export function failureOf(promise: Promise<unknown>): Promise<never> {
  return promise.then(() => new Promise<never>(() => undefined));
}

export function since(t0: number, t1: number = performance.now()): number {
  return t1 - t0;
}

/**
 * kill -9 of the postmaster; resolves once it is gone (so a poll that follows cannot reach the old server),
 * with the time of the kill.
 */
export async function killPostmaster(system: DatabaseSystem): Promise<number> {
  const pid = await livePostmasterPid(system.pgdata);
  if (pid === undefined) throw new Error(`${system.label}: no running postmaster to kill`);
  const t0 = performance.now();
  signalPid(pid, 'SIGKILL');
  if (!(await waitGone(pid, 10_000))) throw new Error(`${system.label}: postmaster ${pid} survived SIGKILL`);
  return t0;
}

/** A uniformly random pause, so a kill lands at any phase of a daemon's loop (Patroni's is 10 s). */
export async function randomPause(maxMs: number): Promise<number> {
  const ms = Math.random() * maxMs;
  await sleep(ms);
  return ms;
}

export function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
