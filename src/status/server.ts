import type { Server } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { errorMessage } from '../errors/index.js';
import type { InstanceState } from '../instance/state.js';
import type { PostgresReportedStatus } from '../postgres/status.js';
import { buildStatusDocument, type ManagerInfo } from './document.js';

export interface StatusSource {
  state: InstanceState;
  info: ManagerInfo;
  /** pg_isready exit code: 0 accepting, 1 rejecting, 2 no response. */
  isReady: () => Promise<number>;
  queryPostgres: () => Promise<PostgresReportedStatus>;
}

const readOnlyMethods = ['GET', 'HEAD'];

function onlyReadMethods(req: Request, res: Response, next: NextFunction): void {
  if (readOnlyMethods.includes(req.method)) {
    next();
    return;
  }
  res.set('Allow', readOnlyMethods.join(', ')).status(405).type('text/plain').send('method not allowed\n');
}

/** The :8000 endpoints CNPG's probes and tools call: `/healthz`, `/readyz`, `/startupz`, `/pg/status`, `/failsafe`. */
export function createStatusApp(source: StatusSource, logger: Logger): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('trust proxy', false);
  const text = (res: Response, code: number, body: string): void => {
    res.status(code).type('text/plain').send(body);
  };

  app.all('/healthz', onlyReadMethods, (_req, res) => {
    // Liveness never checks PostgreSQL (CNPG): a slow recovery must not get the container killed.
    text(res, 200, 'OK');
  });
  app.all('/failsafe', onlyReadMethods, (_req, res) => {
    text(res, 200, 'OK');
  });
  app.all('/readyz', onlyReadMethods, async (_req, res) => {
    if (!source.state.postmasterSpawned) {
      text(res, 500, 'instance is not ready yet');
      return;
    }
    const code = await source.isReady();
    if (code === 0) text(res, 200, 'OK');
    else text(res, 500, `readiness check failed: pg_isready exit code ${code}`);
  });
  app.all('/startupz', onlyReadMethods, async (_req, res) => {
    // pg_isready's "rejecting" (exit 1) counts as started: crash recovery is progress, not failure.
    const code = source.state.postmasterSpawned ? await source.isReady() : 2;
    if (code === 0 || code === 1) text(res, 200, 'OK');
    else text(res, 500, `startup check failed: pg_isready exit code ${code}`);
  });
  app.all('/pg/status', onlyReadMethods, async (_req, res) => {
    try {
      const postgres = await source.queryPostgres();
      res.status(200).json(buildStatusDocument(source.state, source.info, postgres));
    } catch (err) {
      logger.debug({ error: errorMessage(err) }, 'status query failed');
      res.status(500).json({ ...buildStatusDocument(source.state, source.info, undefined), error: errorMessage(err) });
    }
  });
  app.use((_req, res) => {
    text(res, 404, 'not found\n');
  });
  return app;
}

/** Limits that keep one slow or silent client from holding a connection (or the event loop) for long. */
export function hardenServer(server: Server): void {
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 50;
}

export function listen(app: express.Express, port: number, address: string | undefined, logger: Logger, name: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen({ port, host: address, backlog: 4096 }, () => {
      logger.info({ address: server.address() }, `${name} listening`);
      resolve(server);
    });
    hardenServer(server);
    server.once('error', reject);
  });
}
