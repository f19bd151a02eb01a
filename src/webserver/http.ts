import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import type { Logger } from 'pino';

/**
 * The HTTP(S) server both :8000 and :9187 use. Node serves every connection on the event loop, so a slow client
 * holds a socket, never a worker (Patroni's wedged REST API, its #3705); the limits below bound how long and how much.
 */
export interface HardeningOptions {
  /** The whole request head must arrive within this (slowloris). */
  readonly headersTimeoutMs: number;
  /** The whole request, body included. */
  readonly requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  readonly keepAliveTimeoutMs: number;
  /** A TLS handshake must finish within this (a client that connects and says nothing). */
  readonly handshakeTimeoutMs: number;
  /** How often Node checks the two timeouts above (its default of 30 s would let a silent client stay that long). */
  readonly checkIntervalMs: number;
  readonly maxHeaderBytes: number;
  readonly maxConnections: number;
  readonly backlog: number;
}

export const defaultHardening: HardeningOptions = {
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  handshakeTimeoutMs: 5_000,
  checkIntervalMs: 500,
  maxHeaderBytes: 16 * 1024,
  maxConnections: 4096,
  backlog: 4096,
};

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** TLS 1.3 only; the client certificate is requested (for the operator pin), never required or CA-checked. */
export function tlsServerOptions(material: SecureContextOptions | undefined): SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean } {
  return { minVersion: 'TLSv1.3', ...material, requestCert: true, rejectUnauthorized: false };
}

export function createHardenedServer(
  handler: RequestHandler,
  tls: SecureContextOptions | undefined,
  hardening: HardeningOptions = defaultHardening,
): Server {
  const common = {
    headersTimeout: hardening.headersTimeoutMs,
    requestTimeout: hardening.requestTimeoutMs,
    keepAliveTimeout: hardening.keepAliveTimeoutMs,
    connectionsCheckingInterval: hardening.checkIntervalMs,
    maxHeaderSize: hardening.maxHeaderBytes,
    noDelay: true,
  };
  const server: Server =
    tls === undefined
      ? createHttpServer(common, handler)
      : createHttpsServer({ ...common, ...tlsServerOptions(tls), handshakeTimeout: hardening.handshakeTimeoutMs }, handler);
  server.once('listening', () => {
    checkConnectionsOnlyWhileOpen(server, hardening.checkIntervalMs);
  });
  server.maxHeadersCount = 50;
  server.maxConnections = hardening.maxConnections;
  // A TLS client that stalls mid-handshake or a socket that goes quiet is cut; the request timers cover the rest.
  server.on('tlsClientError', (_err: Error, socket: { destroy: () => void }) => {
    socket.destroy();
  });
  return server;
}

/**
 * Node checks the request timeouts of every open connection on an interval that runs from `listen` to `close`,
 * connections or not: at 500 ms, two servers woke an idle pgim 240 times a minute, its largest source of idle CPU.
 * The same check (Node's own function, taken from its timer) runs here only while a connection is open. If a Node
 * version stores the timer differently, Node's interval is left as it is: the limits hold either way.
 */
function checkConnectionsOnlyWhileOpen(server: Server, intervalMs: number): void {
  const key = Object.getOwnPropertySymbols(server).find((symbol) => symbol.description === 'http.server.connectionsCheckingInterval');
  const nodeTimer = key === undefined ? undefined : (server as unknown as Record<symbol, { _onTimeout?: unknown } | undefined>)[key];
  if (typeof nodeTimer?._onTimeout !== 'function') return;
  const check = nodeTimer._onTimeout as () => void;
  clearInterval(nodeTimer as NodeJS.Timeout);
  let open = 0;
  let timer: NodeJS.Timeout | undefined;
  server.on('connection', (socket: Socket) => {
    open += 1;
    timer ??= setInterval(check, intervalMs).unref();
    socket.once('close', () => {
      open -= 1;
      if (open > 0) return;
      clearInterval(timer);
      timer = undefined;
    });
  });
  server.once('close', () => {
    clearInterval(timer);
  });
}

export function listen(server: Server, port: number, host: string | undefined, logger: Logger, name: string, backlog = defaultHardening.backlog): Promise<Server> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, backlog }, () => {
      server.off('error', reject);
      server.on('error', (err) => {
        logger.error({ error: err.message }, `${name} error`);
      });
      logger.info({ address: server.address(), tls: 'setSecureContext' in server }, `${name} listening`);
      resolve(server);
    });
  });
}
