import { readPostInitScripts } from '../desired/post-init-sql.js';
import type { Server } from 'node:http';
import { ExitCode } from '../errors/index.js';
import type { Logger } from 'pino';
import type { ControlPlane } from '../controlplane/index.js';
import { DesiredStateSource } from '../desired/source.js';
import type { DesiredState } from '../desired/state.js';
import { InstanceState } from '../instance/state.js';
import { LogPipe } from '../log/pipe.js';
import { podNameFor, type InstanceOptions } from '../options/index.js';
import type { PostgresInstance } from '../postgres/instance.js';
import { trimMemoryPeriodically } from '../process/memory.js';
import { pid1ReapingUnavailable, Reaper } from '../process/reaper.js';
import { reportIgnoredSignalsTo } from '../process/signals.js';
import { Reconciler } from '../reconcile/reconciler.js';
import { isFenced } from '../role/decision.js';
import { roleChangePlan } from '../role/transitions.js';
import { Supervisor } from '../supervisor/supervisor.js';
import { executableHash, goArch, nodeName, packageVersion } from './manager-info.js';
import { prepareFilesystem } from './prepare.js';
import { startBackups } from './backups.js';
import { reportSecurityWarnings } from '../reconcile/security-warnings.js';
import { bootstrapOrRestore } from './bootstrap.js';
import { cloneExternalCluster, cloneSource, refuseDemotionAtStart } from './clone.js';
import { watchStreamingStandbys } from '../replication/standby-watch.js';
import { watchHaSlots } from '../replication/ha-slot-watch.js';
import { haSlotName } from '../replication/topology.js';
import { SlotReplicator } from '../replication/slot-sync.js';
import { certificatePaths } from '../tls/files.js';
import { cloneWhenPrimaryAnswers, confirmDesiredState, failStartup, httpBindAddress, load, openInstance } from './startup.js';

/**
 * `pgim run` as an object. run() installs the signal handlers, then start() takes the steps in order (load and
 * validate, prepare the filesystem, the desired state source, the reaper and log pipe, the supervisor, the
 * reconciler, bootstrap/clone/rewind, postgres, the servers), each registering how it is undone; dispose() undoes
 * them in reverse, whatever step failed. The Supervisor exists before the Reconciler, which gets its narrow control.
 */
export class Daemon {
  private readonly disposers: (() => void | Promise<void>)[] = [];
  /** A stop while the control plane is still being opened (waiting for the API server) ends that wait. */
  private readonly opening = new AbortController();
  private stopRequested: NodeJS.Signals | undefined;
  private supervisor: Supervisor | undefined;

  constructor(private readonly options: InstanceOptions) {}

  async run(): Promise<number> {
    // Handlers first: Node as PID 1 would otherwise ignore SIGTERM until they exist.
    const onStop = (signal: NodeJS.Signals): void => {
      this.stop(signal);
    };
    const onReload = (): void => {
      this.supervisor?.reload();
    };
    process.on('SIGTERM', onStop).on('SIGINT', onStop).on('SIGQUIT', onStop).on('SIGHUP', onReload);
    this.onDispose(() => {
      process.off('SIGTERM', onStop).off('SIGINT', onStop).off('SIGQUIT', onStop).off('SIGHUP', onReload);
    });
    try {
      return await this.start();
    } finally {
      await this.dispose();
    }
  }

  /** SIGTERM/SIGINT: stop cleanly; repeated, the next stronger shutdown mode. Before postgres runs: start nothing. */
  stop(signal: NodeJS.Signals): void {
    this.stopRequested = signal;
    this.opening.abort();
    this.supervisor?.stop(signal);
  }

  /** Undoes every step start() took, last first. */
  async dispose(): Promise<void> {
    for (const dispose of this.disposers.splice(0).reverse()) await dispose();
  }

  private onDispose(dispose: () => void | Promise<void>): void {
    this.disposers.push(dispose);
  }

  private async start(): Promise<number> {
    const { options } = this;
    const loaded = await load(options, this.opening.signal);
    if (typeof loaded === 'number') return loaded;
    const { controlPlane, logger } = loaded;
    reportIgnoredSignalsTo(logger);
    const cannotReap = pid1ReapingUnavailable();
    if (cannotReap !== undefined) {
      logger.error(cannotReap);
      return ExitCode.failure;
    }
    const state = new InstanceState(loaded.desired.cluster.name, podNameFor(options, loaded.desired.cluster.name));
    this.onDispose(trimMemoryPeriodically());
    const servers: Server[] = [];
    this.onDispose(async () => {
      for (const server of servers) server.closeAllConnections();
      await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    });
    try {
      const droppedRoot = await prepareFilesystem(options, loaded.desired.layout, loaded.desired.cluster.tablespaces);
      const instance = openInstance(options, loaded.desired, logger);
      const desired = await confirmDesiredState(options, loaded, instance, droppedRoot);
      reportSecurityWarnings(desired.rendered.securityWarnings, logger, state);
      const source = new DesiredStateSource(options, controlPlane, desired);
      this.onDispose(() => {
        source.dispose();
      });
      const reaper = new Reaper(logger);
      reaper.start();
      this.onDispose(() => {
        reaper.stop();
      });
      const logPipe = new LogPipe(desired.layout.logDir, logger);
      await logPipe.start();
      this.onDispose(() => {
        logPipe.stop();
      });
      const supervisor = new Supervisor({ reaper, instance, state, logger, onPostgresExit: options.onPostgresExit });
      this.supervisor = supervisor;
      const reconciler = new Reconciler({ instance, state, logger, control: supervisor, controlPlane }, desired);
      this.onDispose(() => {
        reconciler.close();
      });
      const divergence = reconciler.roles.watchForDivergence(() => reconciler.desired);
      this.onDispose(() => {
        divergence.stop();
      });
      const backups = startBackups({ reconciler, controlPlane, logger, state, instance, options, desired });
      this.onDispose(() => {
        backups.stop();
      });
      supervisor.fence(isFenced(desired.cluster.annotations, desired.topology.self), roleChangePlan(desired));
      if (this.stopRequested !== undefined) supervisor.stop(this.stopRequested);
      logger.info(
        { controlPlane: controlPlane.description, pgdata: options.pgdata, runtimeDir: desired.layout.root, osUser: desired.osUser },
        'pgim starting',
      );

      // Loaded on demand: the HTTP, metrics and probe modules are most of pgim's start-up time, and on a normal start
      // they load while PostgreSQL starts instead of before it.
      const startServers = async (): Promise<void> => {
        const { startStatusAndMetrics } = await import('./servers.js');
        source.start();
        const info = { version: await packageVersion(), executableHash: await executableHash(), arch: goArch(process.arch), node: nodeName() };
        const bind = httpBindAddress(options.listenAddress);
        servers.push(...(await startStatusAndMetrics({ options, bind, controlPlane, source, state, instance, info, cluster: desired.cluster, logger, backups: backups.service })));
      };

      // Certificates first: a bootstrap starts postgres with ssl on, and a replica joins with its client certificate.
      await reconciler.writeRuntimeFiles();
      const dataDirectory = await instance.inspectDataDirectory();
      if (dataDirectory !== 'empty') await refuseDemotionAtStart(instance, desired);
      const formerPrimary = dataDirectory !== 'empty' && !desired.topology.isPrimary && !(await instance.isStandby());
      // A bootstrap, a clone or a rewind takes long: the probes must answer all along.
      if (dataDirectory === 'empty' || formerPrimary) await startServers();
      if (dataDirectory === 'empty') {
        await this.createDataDirectory({ desired, instance, state, logger, controlPlane, supervisor, reconciler });
        // A restore removes the restore settings it used: this instance's own (a designated primary following its
        // source's archive, a replica's fallback) must be there before postgres calls restore_command.
        await reconciler.writeRuntimeFiles();
      } else if (formerPrimary) {
        // A former primary (after a failover it missed): rewind onto the new primary before starting as its replica.
        state.phase = 'demoting';
        logger.info({ primary: desired.topology.primary }, 'PGDATA was a primary; another instance is the target: rewinding');
        await reconciler.roles.rejoinAsReplica(desired, supervisor.stopSignal);
      }
      await instance.writeConfiguration(desired.rendered);
      // Before postgres starts: a replica replaying a CREATE TABLESPACE needs its folder (the primary's pass makes its own).
      await instance.ensureTablespaceFolders(desired.cluster.tablespaces);
      // The watches that sleep while they have nothing to look at (QuietInterval) re-read that after each pass.
      const quietWatches: { wake(): void }[] = [divergence, backups];
      source.subscribe((update) => {
        void reconciler.update(update).then(() => {
          for (const watch of quietWatches) watch.wake();
        });
      });
      // synchronous_standby_names follows the standbys that stream from the primary.
      const standbys = watchStreamingStandbys({
        withSession: (fn) => instance.withHeldSession(fn),
        active: () => state.accepting && reconciler.desired.topology.isPrimary && reconciler.desired.cluster.synchronous !== undefined,
        enabled: () => reconciler.desired.cluster.synchronous !== undefined,
        onChange: (names) => {
          source.observeStreamingStandbys(names);
        },
      });
      // A primary's HA slot that went while nothing in the spec changed comes back without waiting for a change.
      const slots = watchHaSlots({
        withSession: (fn) => instance.withHeldSession(fn),
        wanted: () => {
          const { topology } = reconciler.desired;
          return state.accepting && topology.isPrimary ? topology.instances.filter((i) => i !== topology.self).map(haSlotName) : [];
        },
        applies: () => reconciler.desired.topology.isPrimary && reconciler.desired.topology.instances.length > 1,
        onMissing: (missing) => {
          logger.info({ missing }, 'HA replication slots missing on the primary: reconciling');
          void reconciler.trigger('replication slots missing');
        },
      });
      // A replica follows the primary's user slots (spec.replicationSlots.synchronizeReplicas), so a failover keeps them.
      const slotReplicator = new SlotReplicator({
        withSession: (fn) => instance.withHeldSession(fn),
        primary: () => {
          const { topology, layout } = reconciler.desired;
          const address = topology.addresses.get(topology.primary);
          // The pass itself also checks that postgres is in recovery (a former primary not demoted yet keeps its slots).
          const follows = state.accepting && state.phase === 'running' && !topology.isPrimary;
          return follows && address !== undefined ? { address, certificates: certificatePaths(layout.certificatesDir) } : undefined;
        },
        config: () => reconciler.desired.cluster.slotSynchronization,
        logger,
      }).start();
      // After each pass (new slot settings, a new primary) the replicator looks at once, as CNPG's does.
      quietWatches.push(standbys, slots, { wake: () => { slotReplicator.nudge(); } });
      this.onDispose(() => {
        standbys.stop();
        slots.stop();
        slotReplicator.stop();
      });
      source.start();
      const supervised = supervisor.run({
        shutdownPlan: () => ({
          smartSeconds: reconciler.desired.cluster.smartShutdownTimeoutSeconds,
          fastSeconds: reconciler.desired.cluster.stopDelaySeconds,
        }),
        onAccepting: (isPrimary) => reconciler.onPostgresAccepting(isPrimary),
      });
      reconciler.restarts.start();
      if (servers.length === 0 && (await supervisor.firstSpawn)) {
        await startServers().catch(async (err: unknown) => {
          supervisor.stop('status or metrics server failed to start');
          await supervised;
          throw err;
        });
      }
      const code = await supervised;
      reconciler.close();
      // The postmaster is gone: a primary's Lease can go now, so the next primary need not wait for it to run out.
      await controlPlane.releasePrimaryLease(state.podName);
      logger.info({ exitCode: code }, 'pgim exiting');
      return code;
    } catch (err) {
      state.phase = 'failed';
      return failStartup(logger, err);
    }
  }

  /**
   * An empty PGDATA: the target primary bootstraps a new cluster (initdb), or clones an external cluster
   * (`bootstrap.pg_basebackup`, a replica cluster's designated primary); a replica clones the primary.
   */
  private async createDataDirectory(step: {
    desired: DesiredState;
    instance: PostgresInstance;
    state: InstanceState;
    logger: Logger;
    controlPlane: ControlPlane;
    supervisor: Supervisor;
    reconciler: Reconciler;
  }): Promise<void> {
    const { desired, instance, state, logger, controlPlane, supervisor, reconciler } = step;
    state.phase = 'bootstrapping';
    if (cloneSource(desired) !== undefined) {
      await cloneExternalCluster(instance, desired, logger, supervisor.stopSignal);
      if (desired.replicaSource === undefined) reconciler.markCredentialsApplied();
      await controlPlane.reportStatus({ currentPrimary: state.podName, currentPrimaryTimestamp: new Date().toISOString() });
    } else if (desired.topology.isPrimary) {
      const restoring = desired.cluster.bootstrap.recovery !== undefined;
      logger.info({ pgdata: this.options.pgdata }, restoring ? 'PGDATA is empty: restoring a backup (spec.bootstrap.recovery)' : 'PGDATA is empty: bootstrapping a new cluster');
      const scripts = await readPostInitScripts(desired.cluster, controlPlane, this.options.postInitRefsFolders);
      await bootstrapOrRestore(desired, instance, logger, scripts, supervisor.stopSignal);
      // A replica cluster restored from its source's archive keeps the source's roles (it is a standby).
      if (desired.replicaSource === undefined) reconciler.markCredentialsApplied();
      await controlPlane.reportStatus({ currentPrimary: state.podName, currentPrimaryTimestamp: new Date().toISOString() });
    } else {
      await cloneWhenPrimaryAnswers(instance, desired, logger, supervisor.stopSignal);
    }
  }
}
