import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Logger } from 'pino';
import type { IsolationCheck } from '../cluster/observability.js';
import { errorMessage } from '../errors/index.js';
import type { Topology } from '../replication/topology.js';
import type { ProbeResult } from './probes.js';

/** CNPG's ClusterCache timeout: a GET of the Cluster that ends before the kubelet's shortest probe timeout (1 s). */
export const apiServerTimeoutMs = 500;

/** A peer's `/failsafe` endpoint (CNPG's `url.PathFailSafe` on the status port). */
export interface Peer {
  readonly name: string;
  /** Host or IP, for messages as CNPG's `[instance] with ip [..]`. */
  readonly host: string;
  readonly url: URL;
}

export interface LivenessDeps {
  /** `spec.probes.liveness.isolationCheck` when enabled. */
  readonly config: () => IsolationCheck | undefined;
  /** `spec.instances`: a single instance has nobody to ask and is never restarted for isolation (CNPG). */
  readonly instances: () => number;
  /** Runs as a primary now (PGDATA without standby.signal, as CNPG's `IsPrimary`). */
  readonly isPrimary: () => Promise<boolean>;
  /** Resolves when the API server serves the Cluster within `timeoutMs`; absent in files mode. */
  readonly apiServer: ((timeoutMs: number) => Promise<void>) | undefined;
  /** The other instances' `/failsafe` URLs. */
  readonly peers: () => readonly Peer[];
  /** The CA that signed the instances' server certificates (https peers). */
  readonly serverCa: () => Promise<Buffer>;
  readonly logger: Logger;
}

const ok: ProbeResult = { ok: true, message: 'OK' };

/**
 * The instances a primary pings: the ones CNPG's operator reported in `status.instancesReportedState` (what CNPG's
 * pinger iterates), else the Cluster's instances; never itself. Each at its `<instance>.status` address from the
 * `<cluster>-hosts` ConfigMap when given, else at its reported pod IP, else at its host, on this instance's status port
 * (CNPG's fixed 8000), over https when this status server uses TLS.
 */
export function failsafePeers(topology: Pick<Topology, 'self' | 'instances' | 'addresses' | 'statusAddresses'>, reportedIps: ReadonlyMap<string, string>, statusPort: number, tls: boolean): Peer[] {
  const names = reportedIps.size > 0 ? [...reportedIps.keys()] : topology.instances;
  return names
    .filter((name) => name !== topology.self)
    .sort()
    .map((name) => {
      const reported = reportedIps.get(name);
      const address = topology.statusAddresses.get(name) ?? { host: reported ?? topology.addresses.get(name)?.host ?? name, port: statusPort };
      const host = address.host.includes(':') ? `[${address.host}]` : address.host;
      return { name, host: address.host, url: new URL(`${tls ? 'https' : 'http'}://${host}:${address.port}/failsafe`) };
    });
}

/**
 * GET `url`: any HTTP answer counts (CNPG looks at none). The connection (TCP and TLS) must be up within
 * `connectionTimeoutMs` and the answer complete within `requestTimeoutMs`. The server certificate is checked against
 * the server CA only, not the name: peers are reached by pod IP, which CNPG's certificates do not name.
 */
export function pingFailsafe(url: URL, config: IsolationCheck, ca: Buffer | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const timers: NodeJS.Timeout[] = [];
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      for (const timer of timers) clearTimeout(timer);
      if (err === undefined) {
        resolve();
        return;
      }
      req.destroy();
      reject(err);
    };
    const onResponse = (res: IncomingMessage): void => {
      res.resume();
      res.on('end', () => {
        finish();
      });
      res.on('error', finish);
    };
    const https = url.protocol === 'https:';
    const req: ClientRequest = https
      ? httpsRequest(url, { method: 'GET', agent: false, minVersion: 'TLSv1.3', ...(ca === undefined ? {} : { ca }), checkServerIdentity: () => undefined }, onResponse)
      : httpRequest(url, { method: 'GET', agent: false }, onResponse);
    const connectTimer = setTimeout(() => {
      finish(new Error(`no connection within ${config.connectionTimeoutMs} ms`));
    }, config.connectionTimeoutMs);
    timers.push(
      connectTimer,
      setTimeout(() => {
        finish(new Error(`no answer within ${config.requestTimeoutMs} ms`));
      }, config.requestTimeoutMs),
    );
    req.on('socket', (socket) => {
      socket.once(https ? 'secureConnect' : 'connect', () => {
        clearTimeout(connectTimer);
      });
    });
    req.on('error', finish);
    req.end();
  });
}

/**
 * CNPG's `ensureInstancesAreReachable`: every other instance must answer; the first that does not is the error,
 * worded as CNPG's pingError.
 */
async function pingPeers(deps: LivenessDeps, config: IsolationCheck): Promise<string | undefined> {
  const peers = deps.peers();
  const ca = peers.some((peer) => peer.url.protocol === 'https:') ? await deps.serverCa() : undefined;
  const results = await Promise.all(
    peers.map((peer) =>
      pingFailsafe(peer.url, config, ca).then(
        () => undefined,
        (err: unknown) =>
          `instance connectivity error for instance [${peer.name}] with ip [${peer.host}] (requestTimeout:${config.requestTimeoutMs} connectionTimeout:${config.connectionTimeoutMs}): ${errorMessage(err)}`,
      ),
    ),
  );
  return results.find((problem) => problem !== undefined);
}

/**
 * `/healthz` with CNPG's isolation check (pkg/management/postgres/webserver/probes/liveness.go): on a primary of a
 * cluster with more than one instance, when the API server does not answer within 500 ms and some other instance does
 * not answer its `/failsafe`, the probe fails, so the kubelet restarts a primary cut off from everything and it stops
 * taking writes the rest of the cluster will not see. With the API server answering, an unreachable peer is only
 * logged (a network problem shows early). Replicas, single instances and a role that cannot be read answer OK.
 */
export async function livenessWithIsolationCheck(deps: LivenessDeps): Promise<ProbeResult> {
  const config = deps.config();
  if (config === undefined || deps.apiServer === undefined || deps.instances() < 2) return ok;
  const { logger } = deps;
  let primary: boolean;
  try {
    primary = await deps.isPrimary();
  } catch (err) {
    logger.error({ error: errorMessage(err) }, 'Error while checking the instance role, skipping automatic shutdown.');
    return ok;
  }
  if (!primary) return ok;
  let apiError: string | undefined;
  try {
    await deps.apiServer(apiServerTimeoutMs);
  } catch (err) {
    apiError = errorMessage(err);
  }
  const problem = await pingPeers(deps, config);
  if (apiError === undefined) {
    if (problem !== undefined) logger.warn({ error: problem }, 'Instance connectivity error - liveness probe succeeding because the API server is reachable');
    return ok;
  }
  if (problem === undefined) return ok;
  logger.error({ apiServerReachable: false, apiServerErr: apiError, error: problem }, 'Instance connectivity error - liveness probe failing');
  return { ok: false, message: `liveness check failed: ${problem}` };
}
