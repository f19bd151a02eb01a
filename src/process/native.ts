import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from '../fs/package-root.js';

export interface NativeProcessCalls {
  setChildSubreaper(): boolean;
  /** waitpid(pid, WNOHANG) on that one PID: null while it runs or when it is not our child. */
  reap(pid: number): { pid: number; code: number | null; signal: number | null } | null;
  mkfifo(path: string, mode: number): void;
  /** fcntl(F_SETPIPE_SZ); returns the size granted. */
  setPipeSize(fd: number, bytes: number): number;
  /** malloc_trim(0) under glibc: true when pages went back to the kernel. */
  trimMemory(): boolean;
  /** A no-op handler for each real-time signal still at its default (terminate); returns how many. */
  ignoreRealtimeSignals(): number;
  /**
   * The csvlog converter's field names (by position), the message field's index, the valid field counts and the
   * text to watch for (printable ASCII without quote, backslash or comma).
   */
  csvSetFieldNames(names: readonly string[], messageIndex: number, fieldCounts: readonly number[], watch: string): void;
  /**
   * Converts csvlog records from input[start] into JSON lines at out[outPos] (native/csvlog_json.c); `state`
   * receives [input position, output position, 0 end | 1 a record for the string path | 2 out is full, after
   * that record's newline, 1 when a line written by this call may hold the watched text (0: none does)].
   */
  csvConvert(input: Buffer, start: number, out: Buffer, outPos: number, prefix: Buffer, state: Uint32Array): void;
}

let loaded: NativeProcessCalls | Error | undefined;

/** The addon (scripts/build-native.sh), or the reason it is missing; loaded once. */
export function nativeCalls(): NativeProcessCalls | Error {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)(process.env.PGIM_NATIVE_ADDON ?? join(packageRoot(), 'native', 'build', 'pgim_native.node')) as NativeProcessCalls;
    } catch (err) {
      loaded = new Error(`pgim's native addon is not built (scripts/build-native.sh): ${(err as Error).message}`);
    }
  }
  return loaded;
}
