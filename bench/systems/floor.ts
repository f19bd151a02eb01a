import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, pgBinDir, removeTempDir, serviceDirectory } from '../env.js';
import { commonParameters, queryOnce, type Login } from '../pg.js';
import { livePostmasterPid, logTail, postmasterPidOf, signalPid, waitForDirectoryRelease, waitGone } from '../proc.js';
import { instanceName, type SystemContext } from './context.js';
import { initdbOptions, writeBenchConf, writePrivateFile } from './postgres-files.js';
import type { DatabaseSystem, StartedCommand, StopTimings } from './types.js';

const superuserPassword = 'floor-bench-pw';

/**
 * The floor: PostgreSQL driven by `pg_ctl` alone, nothing supervising it. Whatever a manager adds on top of these
 * figures is its own cost.
 */
export class FloorSystem implements DatabaseSystem {
  readonly kind = 'floor';
  readonly label = 'floor';
  readonly endpoints = undefined;
  readonly pgdata: string;
  readonly logFile: string;
  private readonly dir: string;
  private readonly socketDir: string;
  private readonly toolLog: string;

  private constructor(private readonly context: SystemContext, readonly login: Login, private readonly parameters: Readonly<Record<string, string>>) {
    this.dir = join(context.workDir, instanceName('floor'));
    this.pgdata = join(this.dir, 'pgdata');
    this.socketDir = join(this.dir, 'run');
    this.logFile = join(this.dir, 'log', 'postgres.log');
    this.toolLog = join(this.dir, 'pg_ctl.log');
    context.processes.trackDataDirectory(this.pgdata);
  }

  /** `parameters`: settings a benchmark adds on top of the shared ones (B16's logging). */
  static async create(context: SystemContext, parameters: Readonly<Record<string, string>> = {}): Promise<FloorSystem> {
    const system = new FloorSystem(context, { port: await freePort(), user: 'postgres', password: superuserPassword, database: 'postgres' }, parameters);
    await mkdir(system.dir, { recursive: true, mode: 0o755 });
    await serviceDirectory(system.socketDir);
    await serviceDirectory(join(system.dir, 'log'));
    return system;
  }

  private tool(name: string): string {
    return join(pgBinDir, name);
  }

  async initialise(): Promise<void> {
    await serviceDirectory(this.pgdata);
    const pwfile = join(this.dir, 'pwfile');
    await writePrivateFile(pwfile, `${superuserPassword}\n`);
    await this.context.processes.mustRun('initdb', this.tool('initdb'), ['-D', this.pgdata, ...initdbOptions, `--pwfile=${pwfile}`], {
      asServiceUser: true,
      logFile: this.toolLog,
    });
    await writeBenchConf(this.pgdata, {
      ...commonParameters,
      ...this.parameters,
      listen_addresses: '127.0.0.1',
      port: String(this.login.port),
      unix_socket_directories: this.socketDir,
    });
  }

  start(): Promise<StartedCommand> {
    const pgCtl = this.context.processes.spawn('pg_ctl start', this.tool('pg_ctl'), ['start', '-w', '-t', '120', '-D', this.pgdata, '-l', this.logFile], {
      asServiceUser: true,
      logFile: this.toolLog,
    });
    const commandDone = pgCtl.exited.then(async (exit) => {
      if (exit.code !== 0) throw new Error(`pg_ctl start failed (exit ${String(exit.code)})${await logTail(this.logFile)}`);
    });
    // Marked as handled here; whoever awaits it still sees the failure.
    commandDone.catch(() => undefined);
    return Promise.resolve({ commandDone });
  }

  async stop(): Promise<StopTimings> {
    const pid = await postmasterPidOf(this.pgdata);
    const t0 = performance.now();
    const gone = pid === undefined ? Promise.resolve(t0) : waitGone(pid, 120_000).then(() => performance.now());
    await this.context.processes.mustRun('pg_ctl stop', this.tool('pg_ctl'), ['stop', '-m', 'fast', '-w', '-t', '120', '-D', this.pgdata], {
      asServiceUser: true,
      logFile: this.toolLog,
    });
    const done = performance.now();
    return { postmasterGoneMs: (await gone) - t0, doneMs: done - t0 };
  }

  /**
   * What an ideal hand-written supervisor would do: wait until the killed postmaster's backends have left (they hold
   * its shared memory; pgim waits the same way), then `pg_ctl start -w`. The result is crash recovery plus pg_ctl.
   */
  async recoverFromPostmasterKill(): Promise<void> {
    const left = await waitForDirectoryRelease(this.pgdata, 15_000);
    if (left.length > 0) throw new Error(`backends of the killed postmaster still run: ${left.join(', ')}`);
    const started = await this.start();
    await started.commandDone;
  }

  /** The name is one of the benchmark's own constants, the value a number with a unit: no quoting issue. */
  async changeParameter(name: string, value: string): Promise<void> {
    await queryOnce(this.login, `ALTER SYSTEM SET ${name} = '${value}'`);
    await queryOnce(this.login, 'SELECT pg_reload_conf()');
  }

  /** `pg_ctl reload` (SIGHUP to the postmaster): the operator's step after replacing files PostgreSQL reads. */
  async reload(): Promise<void> {
    await this.context.processes.mustRun('pg_ctl reload', this.tool('pg_ctl'), ['reload', '-D', this.pgdata], {
      asServiceUser: true,
      logFile: this.toolLog,
    });
  }

  daemonPid(): undefined {
    return undefined;
  }

  async destroy(): Promise<void> {
    const pid = await livePostmasterPid(this.pgdata);
    if (pid !== undefined) {
      signalPid(pid, 'SIGQUIT');
      await waitGone(pid, 10_000);
    }
    await removeTempDir(this.dir);
  }
}
