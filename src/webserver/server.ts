import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { SecureContextOptions } from 'node:tls';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { z } from 'zod';
import { errorMessage } from '../errors/index.js';
import type { InstanceState } from '../instance/state.js';
import type { PostgresReportedStatus } from '../postgres/status-queries.js';
import type { BackupService } from '../backup/service.js';
import { backupEndpoint } from '../backup/endpoints.js';
import type { BackupMode } from './backup-mode.js';
import { BodyError, readJsonBody, sendBodyError, sendError } from './body.js';
import { coalesced } from '../async/coalesce.js';
import { buildStatusDocument, type ManagerInfo } from './document.js';
import { createHardenedServer, defaultHardening, listen, type HardeningOptions, type RequestHandler } from './http.js';
import { requireOperator } from './operator-auth.js';
import type { ProbeResult, Probes } from './probes.js';
import type { ObservabilitySpec } from '../cluster/observability.js';

export interface StatusSource {
  state: InstanceState;
  info: ManagerInfo;
  spec: () => ObservabilitySpec;
  probes: Probes;
  queryPostgres: () => Promise<PostgresReportedStatus>;
  readyWalFiles: () => Promise<number>;
  /** File-based role, for when PostgreSQL cannot be asked. */
  isPrimaryFromFiles: () => Promise<boolean>;
  /** `pg_controldata` output. */
  controlData: () => Promise<string>;
  /** pg_rewind runs (postgres is stopped on purpose). */
  isPgRewindRunning: () => boolean;
  /** `/pg/mode/backup`: the non-exclusive backup held on one session (volume snapshots). */
  backupMode: BackupMode;
  /**
   * `/pg/archive/partial` on a fenced primary: archives the partial WAL of the shutdown checkpoint and returns its
   * name. Undefined until pgim has WAL archiving (the backups work provides it); the endpoint then answers 501.
   */
  archivePartialWal?: () => Promise<string>;
  /** Archiving and base backups (POST /pg/backup, the `backup` part of /pg/status), when this instance runs them. */
  backups?: BackupService;
  /** `/healthz` with `spec.probes.liveness.isolationCheck` (./isolation-check.ts); absent: always OK. */
  liveness?: () => Promise<ProbeResult>;
}

/** /pg/status answers from one query round per this many ms, whatever the number of clients. */
export const statusMaxAgeMs = 250;

const readOnlyMethods = ['GET', 'HEAD'];

function only(methods: readonly string[]) {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (methods.includes(req.method)) {
      next();
      return;
    }
    res.set('Allow', methods.join(', ')).status(405).type('text/plain').send('method not allowed\n');
  };
}

/** CNPG's `/pg/mode/backup` request bodies (`StartBackupRequest`, `StopBackupRequest`). */
const backupRequest = z.strictObject({
  immediateCheckpoint: z.boolean().optional(),
  waitForArchive: z.boolean().optional(),
  backupName: z.string().min(1).max(253),
});

interface Reply {
  readonly status: number;
  readonly json: boolean;
  readonly body: string;
}

const text = (status: number, body: string): Reply => ({ status, json: false, body });

/**
 * The public read-only endpoints as plain functions: the probes and /pg/status are the hot paths (kubelet, operator,
 * dashboards), so they skip Express's routing, which roughly halves the CPU and garbage per request.
 */
function publicRoutes(source: StatusSource, logger: Logger): Map<string, () => Promise<Reply>> {
  const postgresStatus = coalesced(async () => {
    const [postgres, readyWalFiles] = await Promise.all([source.queryPostgres(), source.readyWalFiles()]);
    return { postgres, readyWalFiles };
    // Never answer for a new postmaster (after a crash or restart) with what the previous one said.
  }, statusMaxAgeMs, () => `${String(source.state.postmaster?.pid)}:${source.state.phase}:${String(source.state.accepting)}`);
  const ok = (): Promise<Reply> => Promise.resolve(text(200, 'OK'));
  const liveness = source.liveness;
  const status = async (): Promise<Reply> => {
    const { state, info } = source;
    if (source.isPgRewindRunning()) {
      // CNPG answers only this (and the file-based role) while pg_rewind runs: nothing else can be asked.
      const isPrimary = await source.isPrimaryFromFiles().catch(() => undefined);
      const extras = { isPgRewindRunning: true, ...(isPrimary === undefined ? {} : { isPrimary }) };
      return { status: 200, json: true, body: JSON.stringify(buildStatusDocument(state, info, undefined, extras)) };
    }
    try {
      const { postgres, readyWalFiles } = await postgresStatus();
      const doc = buildStatusDocument(state, info, postgres, { readyWalFiles });
      return { status: 200, json: true, body: JSON.stringify(source.backups === undefined ? doc : { ...doc, backup: source.backups.snapshot() }) };
    } catch (err) {
      const message = errorMessage(err);
      logger.debug({ error: message }, 'status query failed');
      const isPrimary = await source.isPrimaryFromFiles().catch(() => undefined);
      const extras = isPrimary === undefined ? {} : { isPrimary };
      if (state.phase === 'restarting' || state.phase === 'stopping' || state.phase === 'fenced') {
        return { status: 200, json: true, body: JSON.stringify(buildStatusDocument(state, info, undefined, { ...extras, mightBeUnavailableMaskedError: message })) };
      }
      return { status: 500, json: true, body: JSON.stringify({ ...buildStatusDocument(state, info, undefined, extras), error: message }) };
    }
  };
  return new Map<string, () => Promise<Reply>>([
    // Liveness never checks PostgreSQL (CNPG #7901): a slow recovery must not get the container killed. Only a
    // primary with the isolation check, cut off from the API server and its peers, fails it.
    ['/healthz', liveness === undefined ? ok : async () => {
      const result = await liveness();
      return text(result.ok ? 200 : 500, result.message);
    }],
    ['/failsafe', ok],
    ['/readyz', async () => {
      const result = await source.probes.readiness(source.spec().probes.readiness);
      return text(result.ok ? 200 : 500, result.message);
    }],
    ['/startupz', async () => {
      const result = await source.probes.startup(source.spec().probes.startup);
      return text(result.ok ? 200 : 500, result.message);
    }],
    ['/pg/status', status],
  ]);
}

function send(req: IncomingMessage, res: ServerResponse, reply: Reply): void {
  res.statusCode = reply.status;
  res.setHeader('Content-Type', reply.json ? 'application/json; charset=utf-8' : 'text/plain; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(reply.body));
  res.end(req.method === 'HEAD' ? undefined : reply.body);
}

function serve(route: () => Promise<Reply>, req: IncomingMessage, res: ServerResponse, logger: Logger): void {
  route().then(
    (reply) => {
      send(req, res, reply);
    },
    (err: unknown) => {
      logger.error({ error: errorMessage(err) }, 'status request failed');
      send(req, res, text(500, 'internal error\n'));
    },
  );
}

/**
 * The :8000 endpoints CNPG's probes, operator and tools call. Public: `/healthz`, `/readyz`, `/startupz`,
 * `/pg/status`, `/failsafe`. Operator-only (pinned client certificate over TLS): `/pg/controldata`, `/pg/mode/backup`.
 * GET and HEAD on a public path take the direct route; everything else (wrong methods, operator endpoints, 404)
 * goes through Express.
 */
export function createStatusHandler(source: StatusSource, logger: Logger): RequestHandler {
  const routes = publicRoutes(source, logger);
  const app = createStatusApp(source, logger, routes);
  return (req, res) => {
    const route = req.method === 'GET' || req.method === 'HEAD' ? routes.get((req.url ?? '/').split('?')[0] ?? '/') : undefined;
    if (route) serve(route, req, res, logger);
    else app(req, res);
  };
}

export function createStatusApp(
  source: StatusSource,
  logger: Logger,
  routes: Map<string, () => Promise<Reply>> = publicRoutes(source, logger),
): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('trust proxy', false);
  const controlData = coalesced(source.controlData, 1000);
  for (const [path, route] of routes) {
    app.all(path, only(readOnlyMethods), (req, res) => {
      serve(route, req, res, logger);
    });
  }

  const operator = requireOperator(() => source.spec().operatorCertificateFingerprint);
  app.all('/pg/controldata', operator, only(['GET']), async (_req, res) => {
    try {
      res.status(200).json({ data: await controlData() });
    } catch (err) {
      sendError(res, 500, 'CANNOT_READ_CONTROLDATA', errorMessage(err));
    }
  });
  app.all('/pg/mode/backup', operator, only(['GET', 'POST', 'PUT']), async (req, res) => {
    const backup = source.backupMode;
    try {
      let answer;
      if (req.method === 'GET') answer = backup.status();
      else if (req.method === 'POST') {
        const request = await readJsonBody(req, backupRequest);
        answer = await backup.start({
          backupName: request.backupName,
          immediateCheckpoint: request.immediateCheckpoint ?? false,
          waitForArchive: request.waitForArchive ?? false,
        });
      } else {
        const request = await readJsonBody(req, backupRequest.pick({ backupName: true }), undefined, { contentTypeOptional: true });
        answer = backup.stop(request.backupName);
      }
      res.status(answer.status).json(answer.body);
    } catch (err) {
      if (err instanceof BodyError) sendBodyError(res, err);
      else throw err;
    }
  });
  // CNPG archives the partial WAL of a fenced primary when a replica cluster is demoted; only with WAL archiving.
  app.all('/pg/archive/partial', operator, only(['POST']), async (_req, res) => {
    if (source.state.phase !== 'fenced') {
      sendError(res, 400, 'NOT_FENCED', '');
      return;
    }
    if (!source.archivePartialWal) {
      sendError(res, 501, 'WAL_ARCHIVING_NOT_IMPLEMENTED', 'pgim has no WAL archiving yet: the partial WAL cannot be archived');
      return;
    }
    try {
      res.status(200).json({ data: await source.archivePartialWal() });
    } catch (err) {
      sendError(res, 400, 'ERROR_WHILE_EXECUTING_WAL_ARCHIVE', errorMessage(err));
    }
  });
  // CNPG streams its own Go binary here for an in-place upgrade, only with ENABLE_INSTANCE_MANAGER_INPLACE_UPDATES
  // (off by default); pgim refuses plainly (never 200, never a transient 503): the image is updated by a rollout.
  app.all('/update', operator, (req, res) => {
    req.resume();
    if (req.method !== 'PUT') {
      res.status(405).type('text/plain').send('wrong method used\n');
      return;
    }
    res
      .status(501)
      .set('Connection', 'close')
      .type('text/plain')
      .send('pgim does not replace itself in place: update the image and let the operator roll the pods\n');
  });

  const backups = source.backups;
  if (backups !== undefined) {
    // Files mode's `pgim backup` (CNPG's local `/pg/backup`, which CNPG serves on localhost:8010 only): from this
    // machine only.
    app.all('/pg/backup', only(['POST']), async (req, res) => {
      const reply = await backupEndpoint(backups, req.socket.remoteAddress, typeof req.query.name === 'string' ? req.query.name : undefined);
      res.status(reply.status).json(reply.body);
    });
  }

  app.use((_req, res) => {
    res.status(404).type('text/plain').send('not found\n');
  });
  // Express's default handler would print a stack trace outside production; no internals leave this process.
  app.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) {
      next(err);
      return;
    }
    const status = (err as { status?: unknown }).status;
    const code = typeof status === 'number' && status >= 400 && status < 500 ? status : 500;
    if (code === 500) logger.error({ error: errorMessage(err) }, 'status request failed');
    res.status(code).type('text/plain').send(code === 500 ? 'internal error\n' : 'bad request\n');
  });
  return app;
}

export interface StatusServerOptions {
  readonly port: number;
  readonly host: string | undefined;
  /** Certificate material when TLS is on (undefined: plain HTTP). */
  readonly tls: { material: () => SecureContextOptions | undefined } | undefined;
  readonly hardening?: HardeningOptions;
  readonly name?: string;
}

/** Builds the hardened (optionally TLS 1.3) server for an app and listens with a large backlog. */
export function serveApp(app: RequestHandler, options: StatusServerOptions, logger: Logger): Promise<Server> {
  const hardening = options.hardening ?? defaultHardening;
  const server = createHardenedServer(app, options.tls === undefined ? undefined : (options.tls.material() ?? {}), hardening);
  return listen(server, options.port, options.host, logger, options.name ?? 'status server', hardening.backlog);
}
