import { chmod, rm } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { dirname } from 'node:path';
import { ensureDirectory } from '../fs/atomic.js';

/**
 * The local sockets on which PostgreSQL's archive_command and restore_command (`pgim wal-archive`, `pgim
 * wal-restore`) hand their file to the long-lived pgim: 0600, in a 0700 folder of the runtime dir. One JSON line
 * each way; a request longer than 8 KiB is cut off.
 */

/**
 * Listens on `path` (a stale socket file is replaced). `handle` gets the parsed request, or throws for a bad one:
 * the reply is then `badRequest(message)`.
 */
export async function serveJsonLines<Reply>(path: string, handle: (request: unknown) => Promise<Reply>, badRequest: (message: string) => Reply): Promise<Server> {
  await ensureDirectory(dirname(path), 0o700);
  await rm(path, { force: true });
  const server = createServer((socket) => {
    let buffered = '';
    const reply = (value: Reply): void => {
      socket.end(`${JSON.stringify(value)}\n`);
    };
    socket.setEncoding('utf8');
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      if (buffered.length > 8192) {
        socket.destroy();
        return;
      }
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      socket.removeAllListeners('data');
      let request: unknown;
      try {
        request = JSON.parse(buffered.slice(0, newline));
      } catch (err) {
        reply(badRequest((err as Error).message));
        return;
      }
      void handle(request).then(reply, (err: unknown) => {
        reply(badRequest((err as Error).message));
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      resolve();
    });
  });
  await chmod(path, 0o600);
  server.unref();
  return server;
}

/**
 * Sends one request and resolves to the reply; undefined when nobody listens (no daemon, or it is restarting: the
 * caller then does the work itself); `broken(message)` when the server failed after the request was sent.
 */
export function askJsonLine<Reply>(path: string, request: unknown, broken: (message: string) => Reply): Promise<Reply | undefined> {
  return new Promise((resolve) => {
    let connected = false;
    let reply = '';
    const socket = connect(path);
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      connected = true;
      socket.write(`${JSON.stringify(request)}\n`);
    });
    socket.on('data', (chunk: string) => {
      reply += chunk;
    });
    socket.on('error', (err) => {
      socket.destroy();
      resolve(connected ? broken(err.message) : undefined);
    });
    socket.on('close', () => {
      if (!connected) {
        resolve(undefined);
        return;
      }
      try {
        resolve(JSON.parse(reply) as Reply);
      } catch {
        resolve(broken('closed the connection without an answer'));
      }
    });
  });
}
