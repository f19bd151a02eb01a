import { join } from 'node:path';
import { footprint, type Footprint } from '../footprint.js';
import { logTail } from '../proc.js';
import { NodeFloorServer } from '../systems/node-floor.js';
import type { StatusEndpoints } from '../systems/types.js';
import { initialiseAll, startReadWrite, withSystems } from './common.js';
import type { BenchContext } from './types.js';

/** A running manager process as the footprint and endpoint benchmarks see it. */
export interface RunningDaemon {
  label: string;
  pid: number;
  endpoints: StatusEndpoints;
  logFile: string;
}

/** The daemon's footprint; if it has gone away, an error that says which one and shows the end of its log. */
export async function footprintOf(daemon: RunningDaemon): Promise<Footprint> {
  try {
    return await footprint(daemon.pid);
  } catch (err) {
    throw new Error(`${daemon.label} (PID ${daemon.pid}) is gone: ${err instanceof Error ? err.message : String(err)}${await logTail(daemon.logFile, 30)}`);
  }
}

/**
 * Starts every selected system at once and keeps it running for `body`: the Node floor server stands in for the
 * floor (pg_ctl leaves no process to measure), pgim and Patroni run their PostgreSQL, read-write.
 */
export async function withRunningDaemons<T>(context: BenchContext, body: (daemons: RunningDaemon[]) => Promise<T>): Promise<T> {
  const managed = context.kinds.filter((kind) => kind !== 'floor');
  return withSystems(context, async (systems) => {
    let floor: NodeFloorServer | undefined;
    try {
      const daemons: RunningDaemon[] = [];
      if (context.kinds.includes('floor')) {
        const logFile = join(context.systems.workDir, 'node-floor.log');
        floor = await NodeFloorServer.start(context.systems.processes, logFile);
        daemons.push({ label: floor.label, pid: floor.pid, endpoints: { readiness: floor.url, statusDocument: floor.url }, logFile });
      }
      await initialiseAll(context, systems);
      for (const system of systems) {
        await startReadWrite(system);
        const pid = system.daemonPid();
        if (pid === undefined || system.endpoints === undefined) throw new Error(`${system.label} has no daemon process`);
        daemons.push({ label: system.label, pid, endpoints: system.endpoints, logFile: system.logFile });
      }
      return await body(daemons);
    } finally {
      for (const system of systems) {
        if (system.daemonPid() !== undefined) await system.stop().catch(() => undefined);
      }
      await floor?.stop();
    }
  }, managed);
}
