import type { ControlPlane } from '../controlplane/index.js';
import { resolveObservability, type ObservabilitySpec } from './spec-schema.js';

export type { ObservabilitySpec, MonitoringSpec, ProbeStrategy, ProbeType, QueriesSource } from './spec-schema.js';

/** The observability fields of the Cluster (spec.monitoring, spec.probes, the operator fingerprint). */
export async function readObservabilitySpec(controlPlane: ControlPlane): Promise<ObservabilitySpec> {
  return (await controlPlane.readCluster()).observability;
}

/**
 * The current observability spec, re-read whenever the desired state may have changed. Listeners run after each
 * change event even when the spec itself is unchanged, because the Secrets and ConfigMaps it names may have changed.
 * A spec that cannot be read keeps the last good one (and is logged): monitoring must not go dark over a typo.
 */
export class SpecWatcher {
  private readonly listeners = new Set<(spec: ObservabilitySpec) => void>();
  private stopWatching: () => void = () => undefined;

  private constructor(
    private spec: ObservabilitySpec,
    private readonly read: () => Promise<ObservabilitySpec>,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Reads the spec and follows the control plane's changes (its `watch` serves every subscriber). */
  static async open(controlPlane: ControlPlane, onError: (err: unknown) => void, fallbackClusterName: string): Promise<SpecWatcher> {
    const read = (): Promise<ObservabilitySpec> => readObservabilitySpec(controlPlane);
    const initial = await read().catch((err: unknown) => {
      onError(err);
      return resolveObservability({ spec: {} }, fallbackClusterName);
    });
    const watcher = new SpecWatcher(initial, read, onError);
    watcher.stopWatching = controlPlane.watch(() => void watcher.refresh());
    return watcher;
  }

  /** A fixed spec (tests, and callers without a control plane). */
  static fixed(spec: ObservabilitySpec): SpecWatcher {
    return new SpecWatcher(spec, () => Promise.resolve(spec), () => undefined);
  }

  get current(): ObservabilitySpec {
    return this.spec;
  }

  onChange(listener: (spec: ObservabilitySpec) => void): void {
    this.listeners.add(listener);
  }

  async refresh(): Promise<void> {
    try {
      this.spec = await this.read();
    } catch (err) {
      this.onError(err);
    }
    for (const listener of this.listeners) listener(this.spec);
  }

  stop(): void {
    this.stopWatching();
    this.listeners.clear();
  }
}
