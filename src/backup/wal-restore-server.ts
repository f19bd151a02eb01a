import { rm } from 'node:fs/promises';
import type { Server } from 'node:net';
import { isAbsolute } from 'node:path';
import type { Logger } from 'pino';
import { serveJsonLines } from './local-socket.js';
import { WalRestorer, type Log, type RestoreReply } from './wal-restorer.js';
import { restorePaths } from './wal-restore-settings.js';

/**
 * The long-lived side of `pgim wal-restore`: a local socket (0600, in the 0700 `wal-restore` folder of the runtime
 * dir) on which PostgreSQL's restore_command asks for one WAL file and waits for the answer. The process behind it
 * (the daemon, or `pgim restore`) keeps one S3 client with warm connections and its read-ahead window
 * (wal-restorer.ts), so a restore_command call costs a Node start and a local round trip, and its segment is
 * usually downloaded already.
 *
 * Protocol: one JSON line each way. Request `{"walName": "...", "destination": abs}`; reply `{"outcome":
 * "restored" | "not-found" | "failed", "error"?: "..."}`.
 *
 * One server per runtime dir and process: the daemon's serves a restore it runs, too (`acquire` counts users).
 */
export interface RestoreRequest {
  readonly walName: string;
  readonly destination: string;
}

const servers = new Map<string, { server: Promise<WalRestoreServer>; users: number }>();

/** The runtime dir's server in this process, started on first use; `release` stops it after its last user. */
export async function acquireWalRestoreServer(runtimeDir: string, log: Log): Promise<{ server: WalRestoreServer; release: () => void }> {
  let entry = servers.get(runtimeDir);
  if (entry === undefined) {
    const server = new WalRestoreServer(runtimeDir, log);
    entry = { server: server.start().then(() => server), users: 0 };
    servers.set(runtimeDir, entry);
    entry.server.catch(() => servers.delete(runtimeDir));
  }
  entry.users++;
  const mine = entry;
  const server = await mine.server.catch((err: unknown) => {
    mine.users--;
    throw err;
  });
  let released = false;
  return {
    server,
    release: () => {
      if (released) return;
      released = true;
      if (--mine.users > 0 || servers.get(runtimeDir) !== mine) return;
      servers.delete(runtimeDir);
      server.stop();
    },
  };
}

export class WalRestoreServer {
  private server: Server | undefined;
  readonly restorer: WalRestorer;

  constructor(private readonly runtimeDir: string, log: Log) {
    this.restorer = new WalRestorer({ runtimeDir, log, mode: 'server' });
  }

  async start(): Promise<void> {
    this.server = await serveJsonLines<RestoreReply>(
      restorePaths(this.runtimeDir).socket,
      (raw) => {
        const request = raw as RestoreRequest;
        if (typeof request.walName !== 'string' || typeof request.destination !== 'string' || !isAbsolute(request.destination)) {
          throw new Error('walName and an absolute destination are required');
        }
        return this.restorer.restore(request.walName, request.destination);
      },
      (message) => ({ outcome: 'failed', error: `bad request: ${message}` }),
    );
  }

  stop(): void {
    this.server?.close();
    this.server = undefined;
    void rm(restorePaths(this.runtimeDir).socket, { force: true }).catch(() => undefined);
    this.restorer.close();
  }
}

/** The server's log lines through the process's pino logger. */
export function pinoLog(logger: Logger): Log {
  return (level, msg, fields = {}) => {
    logger[level](fields, msg);
  };
}
