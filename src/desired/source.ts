import { serialised } from '../async/serial.js';
import type { Cluster } from '../cluster/schema.js';
import type { ControlPlane } from '../controlplane/index.js';
import type { InstanceOptions } from '../options/index.js';
import { loadDesiredState, type DesiredState } from './state.js';

/** One read of the desired state: the state, or why it could not be built (with the Cluster when that much was read). */
export type DesiredUpdate =
  | { readonly desired: DesiredState; readonly error?: undefined; readonly cluster: Cluster }
  | { readonly desired?: undefined; readonly error: unknown; readonly cluster: Cluster | undefined };

export type DesiredListener = (update: DesiredUpdate) => void;

/**
 * The one reader of the desired state. It follows the control plane's changes (one watch), loads the desired state
 * once per change and publishes each result, good or not, to every subscriber: the reconciler, the status server,
 * the metrics. Loads are serialised; changes that arrive during a load become one more load.
 */
export class DesiredStateSource {
  private good: DesiredState;
  private cluster: Cluster;
  private readonly listeners = new Set<DesiredListener>();
  private stopWatching: (() => void) | undefined;
  /** The standbys streaming from this instance when it is the primary (replication/standby-watch.ts). */
  private streaming: readonly string[] = [];

  constructor(
    private readonly options: InstanceOptions,
    private readonly controlPlane: ControlPlane,
    initial: DesiredState,
  ) {
    this.good = initial;
    this.cluster = initial.cluster;
  }

  /** The last desired state that could be built. */
  get current(): DesiredState {
    return this.good;
  }

  /** The last Cluster that could be read (its observability fields hold even when a Secret it names is missing). */
  get lastCluster(): Cluster {
    return this.cluster;
  }

  subscribe(listener: DesiredListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Follows the control plane's changes; a second call is a no-op. */
  start(): void {
    this.stopWatching ??= this.controlPlane.watch(() => void this.refresh());
  }

  /** A primary's streaming standbys changed: render again (`synchronous_standby_names` follows them). */
  observeStreamingStandbys(names: readonly string[]): void {
    if (names.join('\0') === this.streaming.join('\0')) return;
    this.streaming = [...names];
    void this.refresh();
  }

  dispose(): void {
    this.stopWatching?.();
    this.listeners.clear();
  }

  /** Loads and publishes; resolves when a load that started after this call has been published. */
  readonly refresh = serialised(async () => {
    this.publish(await this.load());
  });

  private async load(): Promise<DesiredUpdate> {
    let cluster: Cluster | undefined;
    try {
      cluster = await this.controlPlane.readCluster();
      this.cluster = cluster;
      const desired = await loadDesiredState(this.options, this.controlPlane, cluster, this.streaming);
      this.good = desired;
      return { desired, cluster };
    } catch (error) {
      return { error, cluster };
    }
  }

  private publish(update: DesiredUpdate): void {
    for (const listener of this.listeners) listener(update);
  }
}
