import type { Logger } from 'pino';
import { nativeCalls } from './native.js';

/**
 * Signals pgim has no use for whose default action would end or stop it. Each gets a listener that only logs:
 *
 * - SIGUSR1: Node's default is to open its inspector on 127.0.0.1:9229, which lets any process in the pod's network
 *   namespace run code as pgim's user. A JavaScript listener replaces Node's handler, so the inspector never opens
 *   (Node >= 22.14 also has `--disable-sigusr1`; Node 20 has not).
 * - SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGIO, SIGPWR, SIGSTKFLT, SIGXCPU, SIGXFSZ: the default terminates (and
 *   would take postgres down with pgim, leaving crash recovery to the next start).
 * - SIGTSTP, SIGTTIN, SIGTTOU: the default stops the process: a frozen PID 1 and a frozen container.
 *
 * Not listed: SIGTERM, SIGINT, SIGQUIT and SIGHUP, which `run` uses (stop, stop, stop, reload); SIGPIPE, which Node
 * already ignores (writes to a closed pipe fail with EPIPE instead); signals whose default is to do nothing
 * (SIGCHLD, SIGCONT, SIGURG, SIGWINCH); and the synchronous fault signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT,
 * SIGTRAP, SIGSYS), after which carrying on is not safe. The real-time signals (SIGRTMIN..SIGRTMAX, default:
 * terminate) have no names Node can listen for: the native addon gives them a no-op handler.
 */
export const ignoredSignals = [
  'SIGUSR1', 'SIGUSR2', 'SIGALRM', 'SIGVTALRM', 'SIGPROF', 'SIGIO', 'SIGPWR', 'SIGSTKFLT', 'SIGXCPU', 'SIGXFSZ',
  'SIGTSTP', 'SIGTTIN', 'SIGTTOU',
] as const satisfies readonly NodeJS.Signals[];

/** A flood of signals becomes one log line per signal and interval, with the count. */
const logIntervalMs = 10_000;

let logger: Logger | undefined;
const seen = new Map<NodeJS.Signals, { count: number; loggedAt: number }>();

function onIgnoredSignal(signal: NodeJS.Signals): void {
  const entry = seen.get(signal) ?? { count: 0, loggedAt: -Infinity };
  entry.count++;
  seen.set(signal, entry);
  const now = Date.now();
  if (logger === undefined || now - entry.loggedAt < logIntervalMs) return;
  logger.warn({ signal, count: entry.count }, `received ${signal}, which pgim does not use: ignored`);
  entry.count = 0;
  entry.loggedAt = now;
}

let installed = false;

/**
 * Node's CPU profiler (`--cpu-prof`, `--prof`) samples with SIGPROF: a listener here would replace its handler, so
 * nothing is sampled and the flood of signals costs seconds of CPU a minute. Profiling is a developer's choice.
 */
function profiling(): boolean {
  return process.execArgv.some((flag) => flag === '--cpu-prof' || flag === '--prof' || flag.startsWith('--cpu-prof-'));
}

/**
 * Installs the listeners; idempotent. Runs when this module is first imported, which cmd/pgim.ts does before any
 * other import, so the inspector's window is only Node's own start-up. Signal listeners do not keep Node alive.
 */
export function ignoreUnusedSignals(): void {
  if (installed) return;
  installed = true;
  for (const signal of ignoredSignals) if (signal !== 'SIGPROF' || !profiling()) process.on(signal, onIgnoredSignal);
  const native = nativeCalls();
  // Without the addon (reported by the reaper) the real-time signals keep their default.
  if (!(native instanceof Error)) native.ignoreRealtimeSignals();
}

/** Where ignored signals are reported once a logger exists; until then they are only counted. */
export function reportIgnoredSignalsTo(target: Logger): void {
  logger = target;
}

ignoreUnusedSignals();
