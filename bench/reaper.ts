import { spawn, spawnSync } from 'node:child_process';

/**
 * pg_ctl and Patroni detach the postmaster, so it is re-parented to the nearest "child subreaper", else PID 1. In a
 * container whose PID 1 does not reap orphans promptly (this one's did not), a killed postmaster stays a zombie;
 * `kill(pid, 0)` still succeeds on it, so PostgreSQL refuses to start ("lock file postmaster.pid already exists") and
 * Patroni keeps seeing a running postmaster. A real host's init reaps at once; this small reaper gives every system
 * the same: it makes itself a subreaper (prctl(PR_SET_CHILD_SUBREAPER) through ctypes; Node has no binding), runs
 * the harness as its child, reaps whatever is re-parented to it, and exits with the harness's exit code.
 */
const reaperScript = `
import ctypes, os, signal, sys
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")
harness = os.fork()
if harness == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
# Ctrl-C reaches the harness directly (same terminal process group); it cleans up and exits by itself.
signal.signal(signal.SIGINT, signal.SIG_IGN)
for sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(sig, lambda signum, frame: os.kill(harness, signum))
while True:
    try:
        pid, status = os.wait()
    except InterruptedError:
        continue
    except ChildProcessError:
        sys.exit(1)
    if pid == harness:
        sys.exit(os.waitstatus_to_exitcode(status))
`;

const reapedMarker = 'PGIM_BENCH_UNDER_REAPER';

function pythonAvailable(): boolean {
  return spawnSync('python3', ['-c', 'import ctypes'], { stdio: 'ignore', timeout: 10_000 }).status === 0;
}

/**
 * Re-runs this harness under the reaper unless it already is. Returns the exit code to use when it did (the run
 * happened in the child), or undefined when the caller should go on and run the benchmarks itself.
 */
export async function runUnderReaper(log: (line: string) => void): Promise<number | undefined> {
  if (process.env[reapedMarker] === '1') return undefined;
  if (!pythonAvailable()) {
    log('python3 is missing: running without a subreaper (a killed postmaster may stay a zombie under PID 1)');
    return undefined;
  }
  const child = spawn('python3', ['-c', reaperScript, process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, [reapedMarker]: '1' },
  });
  // The harness below handles Ctrl-C itself; a SIGTERM to this process is passed down through the reaper.
  const ignore = (): void => undefined;
  const forward = (): void => {
    child.kill('SIGTERM');
  };
  process.on('SIGINT', ignore).on('SIGTERM', forward);
  const code = await new Promise<number>((resolve) => {
    child.once('exit', (exitCode, signal) => {
      resolve(exitCode ?? (signal === null ? 1 : 128));
    });
  });
  process.off('SIGINT', ignore).off('SIGTERM', forward);
  return code;
}
