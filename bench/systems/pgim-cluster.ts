import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { join } from 'node:path';
import { writeConfigDir } from '../../test-kit/config.js';
import { handToPostgres, postgresUser } from '../../test-kit/env.js';
import { pgimArgs, pgimEntry, pgimLaunch, pgimNodeArgs, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';
import { freePort, isRoot, removeTempDir, sleep } from '../env.js';
import { clusterParameters } from '../pg.js';
import { livePostmasterPid, logTail, signalPid, waitGone, type TrackedProcess } from '../proc.js';
import { instanceName, type SystemContext } from './context.js';
import { MemberCluster, type ChangeRequest, type ClusterMember, type ReplicatedCluster } from './replicated.js';

const clusterName = 'bench';

/** A JSON log line with its `ts` on performance.now()'s time line, and the rest of its fields. */
export interface TimedEvent {
  readonly at: number;
  readonly what: string;
  readonly fields: Record<string, unknown>;
}

/** The JSON lines of `text` that have a `ts` and the text field `key` (pgim's `msg`, the CLI trace's `step`). */
function timedEvents(text: string, key: string): TimedEvent[] {
  const events: TimedEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const fields = JSON.parse(line) as Record<string, unknown>;
      const what = fields[key];
      if (typeof fields.ts === 'string' && typeof what === 'string') events.push({ at: Date.parse(fields.ts) - performance.timeOrigin, what, fields });
    } catch {
      // not one of ours
    }
  }
  return events;
}
const secrets = { appPassword: 'pgim-bench-app-pw', superuserPassword: 'pgim-bench-super-pw' };

interface PgimMember extends ClusterMember {
  readonly paths: PgimPaths;
  readonly ports: PgimPorts;
  readonly logFile: string;
  daemon?: TrackedProcess;
}

/**
 * Three `pgim run` on one files-mode config folder, as test/support/cluster.ts and `scripts/cluster.sh` run them:
 * cluster.yaml with `instances: 3`, the `<cluster>-hosts` ConfigMap naming each instance's address, and the
 * certificates of `pgim certs`. A switchover is `pgim switchover --to NAME`, which rewrites status.targetPrimary.
 */
export class PgimCluster extends MemberCluster<PgimMember> implements ReplicatedCluster {
  readonly kind = 'pgim';
  readonly label = 'pgim';
  /** CNPG's protocol: streaming_replica logs in with its certificate over hostssl. */
  readonly tls = true;
  private readonly configDir: string;

  private constructor(private readonly context: SystemContext, private readonly dir: string, members: readonly PgimMember[]) {
    super(members);
    this.configDir = join(dir, 'config');
  }

  /**
   * `instances`: 3 unless given (the cost curve S5 runs 2 to 9); `parameters`: PostgreSQL settings added to the
   * shared ones; `spec`: extra spec fields (e.g. `monitoring`).
   */
  static async create(
    context: SystemContext,
    options: { synchronous?: Record<string, unknown>; instances?: number; parameters?: Record<string, string>; spec?: Record<string, unknown> } = {},
  ): Promise<PgimCluster> {
    const parameters = { ...clusterParameters, ...options.parameters };
    const dir = join(context.workDir, instanceName('pgim-cluster'));
    const configDir = join(dir, 'config');
    await mkdir(dir, { recursive: true, mode: 0o755 });
    const members: PgimMember[] = [];
    for (let n = 1; n <= (options.instances ?? 3); n += 1) {
      const name = `${clusterName}-${n}`;
      const ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
      const paths = { configDir, pgdata: join(dir, `pgdata-${n}`), runtimeDir: join(dir, `runtime-${n}`) };
      members.push({
        name,
        paths,
        ports,
        pgdata: paths.pgdata,
        logFile: join(dir, `${name}.log`),
        login: { port: ports.pgPort, user: 'postgres', password: secrets.superuserPassword, database: 'app' },
      });
      context.processes.trackDataDirectory(paths.pgdata);
    }
    // The same settings as the switchover integration test: a demoting primary waits 1 s for clients (smart), and
    // switchoverDelay bounds its shutdown; on an idle cluster neither should be reached.
    await writeConfigDir(
      configDir,
      {
        name: clusterName,
        enableSuperuserAccess: true,
        smartShutdownTimeout: 1,
        stopDelay: 20,
        parameters,
        spec: {
          instances: members.length,
          switchoverDelay: 20,
          ...(options.synchronous === undefined ? {} : { postgresql: { parameters, synchronous: options.synchronous } }),
          ...options.spec,
        },
      },
      secrets,
    );
    const hosts = join(configDir, 'configmaps', `${clusterName}-hosts`);
    await mkdir(hosts, { recursive: true });
    for (const member of members) await writeFile(join(hosts, member.name), `127.0.0.1:${member.ports.pgPort}`);
    const cluster = new PgimCluster(context, dir, members);
    await context.processes.mustRun('pgim certs', process.execPath, [pgimEntry, 'certs', '--cluster', clusterName, '--instances', String(members.length), '--out', join(configDir, 'secrets')], {
      logFile: join(dir, 'certs.log'),
    });
    await handToPostgres(configDir);
    return cluster;
  }

  restartMember(name: string): void {
    const member = this.member(name);
    if (member.daemon?.running === true) throw new Error(`${name} is already running`);
    member.daemon = this.context.processes.spawn(
      `pgim ${name}`,
      process.execPath,
      pgimNodeArgs(['run', ...pgimArgs(member.paths, member.ports), '--pod-name', name, ...(isRoot ? ['--user', postgresUser] : [])]),
      { logFile: member.logFile, env: { ...pgimLaunch.env, PGIM_LOG_LEVEL: 'info' } },
    );
  }

  /** kill -9 of pgim only: its postmaster gets the parent-death signal pgim set (PR_SET_PDEATHSIG) and goes too. */
  async killMember(name: string): Promise<void> {
    const member = this.member(name);
    const postmaster = await livePostmasterPid(member.pgdata);
    member.daemon?.signal('SIGKILL');
    if ((await member.daemon?.waitExit(10_000)) === undefined) throw new Error(`pgim ${name} survived SIGKILL`);
    if (postmaster !== undefined && !(await waitGone(postmaster, 10_000))) {
      // Not what pgim promises (B9 measures it); the benchmark still needs the node gone.
      signalPid(postmaster, 'SIGKILL');
      throw new Error(`the postmaster of ${name} (PID ${postmaster}) outlived its pgim by 10 s`);
    }
  }

  switchover(_from: string, to: string): Promise<ChangeRequest> {
    return this.setTargetPrimary(to, false);
  }

  failover(_from: string, to: string): Promise<ChangeRequest> {
    return this.setTargetPrimary(to, true);
  }

  private async setTargetPrimary(to: string, failover: boolean): Promise<ChangeRequest> {
    const firstIssuedAt = performance.now();
    for (;;) {
      const issuedAt = performance.now();
      const exit = await this.context.processes.run(
        'pgim switchover',
        process.execPath,
        [pgimEntry, 'switchover', '--config-dir', this.configDir, '--to', to, ...(failover ? ['--failover'] : [])],
        { logFile: this.commandLog },
        30_000,
      );
      const returnedAt = performance.now();
      if (exit.code === 0) {
        // The command writes a temp file and renames it over cluster.yaml right before it exits: that file's mtime
        // is the moment targetPrimary changed (wall clock, mapped onto performance.now()'s time line). The CLI's own
        // start (node, module loading, its health check of the target) is not part of what the daemons do.
        const written = (await stat(join(this.configDir, 'cluster.yaml'))).mtimeMs - performance.timeOrigin;
        return { issuedAt, effectiveAt: Math.min(returnedAt, Math.max(issuedAt, written)), returnedAt };
      }
      // Right after a kill the target may refuse for a moment (the integration test retries the same way); a
      // planned switchover is never retried: a refusal there is a failure.
      if (!failover || returnedAt - firstIssuedAt > 15_000) {
        throw new Error(`pgim switchover --to ${to}${failover ? ' --failover' : ''} failed (exit ${String(exit.code)})${await logTail(this.commandLog)}`);
      }
      await sleep(100);
    }
  }

  /**
   * `pgim switchover --failover` without --to: the CLI elects the replica (synchronous: only one sure to hold every
   * acknowledged commit). Retried for up to 15 s while it refuses right after a kill.
   */
  async electFailover(): Promise<{ request: ChangeRequest; to: string; steps: TimedEvent[] }> {
    const firstIssuedAt = performance.now();
    for (;;) {
      const logStart = (await stat(this.commandLog).catch(() => undefined))?.size ?? 0;
      const issuedAt = performance.now();
      // PGIM_LOG_LEVEL=debug: the CLI prints a timed line per step on stderr (into the command log).
      const output = await this.context.processes
        .output('pgim switchover', process.execPath, [pgimEntry, 'switchover', '--config-dir', this.configDir, '--failover'], { logFile: this.commandLog, env: { PGIM_LOG_LEVEL: 'debug' } }, 30_000)
        .catch(() => undefined);
      const returnedAt = performance.now();
      const to = output === undefined ? undefined : /targetPrimary: \S+ -> (\S+)/.exec(output)?.[1];
      if (to !== undefined) {
        const written = (await stat(join(this.configDir, 'cluster.yaml'))).mtimeMs - performance.timeOrigin;
        const steps = timedEvents((await readFile(this.commandLog)).subarray(logStart).toString('utf8'), 'step');
        return { request: { issuedAt, effectiveAt: Math.min(returnedAt, Math.max(issuedAt, written)), returnedAt }, to, steps };
      }
      if (returnedAt - firstIssuedAt > 15_000) throw new Error(`pgim switchover --failover refused for 15 s${await logTail(this.commandLog)}`);
      await sleep(100);
    }
  }

  /** The member's log lines (pgim's JSON) from `since` (performance.now() time line) on, with their times. */
  async logEvents(name: string, since: number): Promise<TimedEvent[]> {
    const text = await readFile(this.member(name).logFile, 'utf8').catch(() => '');
    return timedEvents(text, 'msg').filter((event) => event.at >= since);
  }

  /** Turns synchronous replication on (`spec.postgresql.synchronous`) or off (undefined) in cluster.yaml. */
  async setSynchronous(synchronous: Record<string, unknown> | undefined): Promise<void> {
    const file = join(this.configDir, 'cluster.yaml');
    const doc = parseDocument(await readFile(file, 'utf8'));
    if (synchronous === undefined) doc.deleteIn(['spec', 'postgresql', 'synchronous']);
    else doc.setIn(['spec', 'postgresql', 'synchronous'], synchronous);
    const mode = (await stat(file)).mode & 0o7777;
    await writeFile(`${file}.edit`, doc.toString(), { mode });
    await rename(`${file}.edit`, file);
  }

  private get commandLog(): string {
    return join(this.dir, 'switchover.log');
  }

  async destroy(): Promise<void> {
    await Promise.all(this.members.map((m) => m.daemon?.terminate(30_000) ?? Promise.resolve()));
    await removeTempDir(this.dir);
  }
}
