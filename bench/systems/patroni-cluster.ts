import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort, removeTempDir, serviceDirectory } from '../env.js';
import { livePostmasterPid, signalPid, waitGone, type TrackedProcess } from '../proc.js';
import { instanceName, type SystemContext } from './context.js';
import { BenchCertificates, writeSecretFolder } from '../tls.js';
import { patroniConfig, superuserPassword, type PatroniTls } from './patroni.js';
import { writePrivateFile } from './postgres-files.js';
import { MemberCluster, type ChangeRequest, type ClusterMember, type ReplicatedCluster } from './replicated.js';

interface PatroniMember extends ClusterMember {
  readonly restUrl: string;
  readonly configFile: string;
  readonly home: string;
  readonly logFile: string;
  daemon?: TrackedProcess;
}

/**
 * Three Patroni members of one scope on the harness's etcd, each with its own data directory and ports; the first
 * bootstraps, the others clone it (pg_basebackup). use_pg_rewind is on, so a failed primary can rejoin.
 */
export class PatroniCluster extends MemberCluster<PatroniMember> implements ReplicatedCluster {
  readonly kind = 'patroni';

  private constructor(
    private readonly context: SystemContext,
    private readonly dir: string,
    members: readonly PatroniMember[],
    readonly tls: boolean,
  ) {
    super(members);
  }

  /** `patroni`, or `patroni-tls` when it encrypts as pgim does. */
  get label(): string {
    return this.tls ? 'patroni-tls' : 'patroni';
  }

  /**
   * `tls`: the server offers TLS and replication requires it, as pgim (CNPG) always does; otherwise Patroni's default,
   * everything in clear text.
   */
  static async create(context: SystemContext, options: { synchronousMode?: boolean; tls?: boolean } = {}): Promise<PatroniCluster> {
    const { etcdHost } = context;
    if (etcdHost === undefined) throw new Error('Patroni needs etcd, which was not started');
    const scope = instanceName('patroni-cluster');
    const dir = join(context.workDir, scope);
    await mkdir(dir, { recursive: true, mode: 0o755 });
    const tls = options.tls === true ? await clusterTls(dir) : undefined;
    const members: PatroniMember[] = [];
    for (let n = 1; n <= 3; n += 1) {
      const name = `member${n}`;
      const memberDir = join(dir, name);
      await mkdir(memberDir, { recursive: true, mode: 0o755 });
      const home = await serviceDirectory(join(memberDir, 'home'));
      const socketDir = await serviceDirectory(join(memberDir, 'run'));
      const pgdata = await serviceDirectory(join(memberDir, 'pgdata'));
      const pgPort = await freePort();
      const restPort = await freePort();
      const configFile = join(home, 'patroni.yml');
      await writePrivateFile(
        configFile,
        stringify(patroniConfig({ scope, name, pgPort, restPort, pgdata, home, socketDir, etcdHost, usePgRewind: true, synchronousMode: options.synchronousMode === true, tls })),
      );
      context.processes.trackDataDirectory(pgdata);
      members.push({
        name,
        pgdata,
        home,
        configFile,
        restUrl: `http://127.0.0.1:${restPort}`,
        logFile: join(memberDir, 'patroni.log'),
        login: { port: pgPort, user: 'postgres', password: superuserPassword, database: 'postgres' },
      });
    }
    return new PatroniCluster(context, dir, members, tls !== undefined);
  }

  restartMember(name: string): void {
    const member = this.member(name);
    if (member.daemon?.running === true) throw new Error(`${name} is already running`);
    member.daemon = this.context.processes.spawn(`patroni ${name}`, 'patroni', [member.configFile], {
      asServiceUser: true,
      logFile: member.logFile,
      cwd: member.home,
    });
  }

  /**
   * kill -9 of Patroni and of its postmaster: a lost node, the state pgim's kill leaves (Patroni alone would leave
   * PostgreSQL running; B9 shows that).
   */
  async killMember(name: string): Promise<void> {
    const member = this.member(name);
    member.daemon?.signal('SIGKILL');
    if ((await member.daemon?.waitExit(10_000)) === undefined) throw new Error(`patroni ${name} survived SIGKILL`);
    const postmaster = await livePostmasterPid(member.pgdata);
    if (postmaster === undefined) return;
    signalPid(postmaster, 'SIGKILL');
    if (!(await waitGone(postmaster, 10_000))) throw new Error(`the postmaster of ${name} survived SIGKILL`);
  }

  switchover(from: string, to: string): Promise<ChangeRequest> {
    return this.post(from, 'switchover', { leader: from, candidate: to }, false);
  }

  /** Asked of the candidate (the old leader's API is gone); Patroni answers after polling up to 20 s, maybe 503. */
  failover(_from: string, to: string): Promise<ChangeRequest> {
    return this.post(to, 'failover', { candidate: to }, true);
  }

  /** Patroni's dynamic configuration (`PATCH /config`), e.g. `{synchronous_mode: true}`; applied within loop_wait. */
  async patchConfig(via: string, patch: Record<string, unknown>): Promise<void> {
    const response = await fetch(`${this.member(via).restUrl}/config`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(patch),
      signal: AbortSignal.timeout(30_000),
    });
    if (!response.ok) throw new Error(`Patroni PATCH /config: ${response.status} ${await response.text()}`);
  }

  private async post(via: string, action: 'switchover' | 'failover', body: Record<string, string>, tolerateTimeout: boolean): Promise<ChangeRequest> {
    const issuedAt = performance.now();
    const response = await fetch(`${this.member(via).restUrl}/${action}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(60_000),
    });
    const text = await response.text();
    const returnedAt = performance.now();
    // 503 "status unknown" only means Patroni's own 20 s poll ended first; the benchmark polls PostgreSQL itself.
    if (!response.ok && !(tolerateTimeout && response.status === 503)) throw new Error(`Patroni POST /${action}: ${response.status} ${text}`);
    return { issuedAt, effectiveAt: issuedAt, returnedAt };
  }

  async destroy(): Promise<void> {
    await Promise.all(this.members.map((m) => m.daemon?.terminate(30_000) ?? Promise.resolve()));
    await removeTempDir(this.dir);
  }
}

/**
 * One CA and one server pair (it names 127.0.0.1, where every member listens) for the whole cluster, made by the code
 * behind `pgim certs` as pgim's own are: the same key type, so the handshakes cost the same.
 */
async function clusterTls(dir: string): Promise<PatroniTls> {
  const certs = await BenchCertificates.create(join(dir, 'ca'), 'patroni');
  const server = await certs.serverPair();
  const folder = join(dir, 'tls');
  await writeSecretFolder(folder, { 'tls.crt': server.cert, 'tls.key': server.key, 'ca.crt': certs.caCert });
  return { certFile: join(folder, 'tls.crt'), keyFile: join(folder, 'tls.key'), caFile: join(folder, 'ca.crt') };
}
