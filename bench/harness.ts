import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchmarks } from './benchmarks/index.js';
import type { BenchContext, BenchmarkId, Recorder, Sample } from './benchmarks/types.js';
import { makeTempDir, removeTempDir } from './env.js';
import { ProcessRegistry } from './proc.js';
import { ensurePatroni, machineInfo, patroniAvailable, type MachineInfo } from './setup.js';
import type { SystemContext } from './systems/context.js';
import { KubernetesPlane, locateApiServer, locateCnpgTools, type CnpgTools } from './systems/cnpg-plane.js';
import { EtcdServer } from './systems/etcd.js';
import { kubernetesKinds, type SystemKind } from './systems/types.js';

/** The repository root (this file runs from dist/bench/). */
export const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface BenchOptions {
  /** Benchmarks to run, in plan order; all when empty. */
  only: readonly BenchmarkId[];
  runs: number;
  systems: readonly SystemKind[];
  warmup: boolean;
  quick: boolean;
  /** Install Patroni and etcd with apt-get when missing (root only). */
  install: boolean;
  log: (line: string) => void;
}

export interface BenchFailure {
  benchmark: BenchmarkId;
  error: string;
}

export interface BenchResult {
  startedAt: string;
  finishedAt: string;
  options: { only: BenchmarkId[]; runs: number; systems: SystemKind[]; warmup: boolean; quick: boolean };
  machine: MachineInfo;
  samples: Sample[];
  notes: string[];
  failures: BenchFailure[];
}

/**
 * One benchmark session: owns every process and temp folder it creates, so `cleanup` (end of run, failure, Ctrl-C)
 * leaves nothing behind. A benchmark that fails is reported and the next one still runs.
 */
export class BenchSession {
  readonly processes = new ProcessRegistry();
  private workDir: string | undefined;
  private etcd: EtcdServer | undefined;
  private kubernetes: KubernetesPlane | undefined;
  private cleaned: Promise<void> | undefined;

  constructor(private readonly options: BenchOptions) {}

  async execute(): Promise<BenchResult> {
    const { options } = this;
    const startedAt = new Date().toISOString();
    const notes: string[] = [];
    const kinds = [...options.systems];
    if (kinds.includes('patroni') && !(options.install ? ensurePatroni(options.log) : patroniAvailable())) {
      kinds.splice(kinds.indexOf('patroni'), 1);
      notes.push('Patroni was skipped: patroni or etcd is not installed.');
    }
    const machine = machineInfo(packageRoot, kinds.includes('patroni'));
    this.workDir = await makeTempDir('bench');
    const systems: SystemContext = { processes: this.processes, workDir: this.workDir };
    if (kinds.includes('patroni')) {
      try {
        this.etcd = await EtcdServer.start(this.processes, this.workDir);
        systems.etcdHost = this.etcd.hostPort;
      } catch (err) {
        kinds.splice(kinds.indexOf('patroni'), 1);
        notes.push(`Patroni was skipped: etcd did not start (${err instanceof Error ? err.message : String(err)}).`);
      }
    }

    if (kinds.some((kind) => kubernetesKinds.includes(kind))) {
      const skip = (kind: SystemKind, reason: string): void => {
        if (!kinds.includes(kind)) return;
        kinds.splice(kinds.indexOf(kind), 1);
        notes.push(`${kind === 'cnpg' ? "CloudNativePG's instance manager (cnpg)" : 'pgim in Kubernetes mode (pgim-k8s)'} was skipped: ${reason}.`);
      };
      const server = await locateApiServer();
      if ('skipReason' in server) {
        for (const kind of kubernetesKinds) skip(kind, server.skipReason);
      } else {
        let cnpg: CnpgTools | undefined;
        if (kinds.includes('cnpg')) {
          const tools = await locateCnpgTools(options.log);
          if ('skipReason' in tools) skip('cnpg', tools.skipReason);
          else cnpg = tools;
        }
        this.kubernetes = new KubernetesPlane(server.k8sBinDir, cnpg);
        systems.kubernetes = this.kubernetes;
      }
    }

    const samples: Sample[] = [];
    const failures: BenchFailure[] = [];
    const selected = benchmarks.filter((b) => options.only.length === 0 || options.only.includes(b.id));
    for (const benchmark of selected) {
      const context: BenchContext = {
        kinds,
        runs: options.runs,
        warmup: options.warmup,
        quick: options.quick,
        systems,
        log: options.log,
        note: (text) => notes.push(text),
      };
      const recorder: Recorder = {
        add: (system, metric, run, value, unit, extra) => {
          samples.push({ benchmark: benchmark.id, metric, system, run: run.index, warmup: run.warmup, value, unit, ...(extra?.detail === true ? { detail: true } : {}) });
        },
      };
      options.log(`${benchmark.id} ${benchmark.title} (${kinds.join(', ')})`);
      const t0 = performance.now();
      try {
        await benchmark.run(context, recorder);
      } catch (err) {
        const error = err instanceof Error ? err.message : String(err);
        failures.push({ benchmark: benchmark.id, error });
        options.log(`${benchmark.id} FAILED: ${error}`);
      }
      options.log(`${benchmark.id} took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    return {
      startedAt,
      finishedAt: new Date().toISOString(),
      options: { only: selected.map((b) => b.id), runs: options.runs, systems: kinds, warmup: options.warmup, quick: options.quick },
      machine,
      samples,
      notes,
      failures,
    };
  }

  /** Idempotent: stops every process (daemons, stray postmasters, etcd last) and removes the temp folder. */
  cleanup(): Promise<void> {
    this.cleaned ??= (async () => {
      await this.processes.stopAll();
      await this.etcd?.stop();
      await this.kubernetes?.stop();
      if (this.workDir !== undefined) await removeTempDir(this.workDir);
    })();
    return this.cleaned;
  }
}

/** Runs the selected benchmarks and always cleans up; the results are returned, not written. */
export async function runBenchmarks(options: BenchOptions): Promise<BenchResult> {
  const session = new BenchSession(options);
  try {
    return await session.execute();
  } finally {
    await session.cleanup();
  }
}
