import { quietInterval, type QuietInterval } from '../async/quiet-interval.js';

/**
 * A replica can fork from its primary's history: after a failover it may have received WAL from the former
 * primary past the point where the new primary's timeline begins. PostgreSQL then retries streaming forever
 * ("new timeline N forked off current database system timeline M before current recovery point") and never heals;
 * a later switchover to it would even promote the wrong history. pg_rewind heals it. This watch notices: a replica
 * that has not streamed for a while, while its primary answers on a later timeline than its own.
 */

export interface ReplicaState {
  streaming: boolean;
  /** The timeline of the replica's last restartpoint (pg_control). */
  timeline: number;
}

export interface DivergenceProbe {
  /**
   * Whether this instance is to be a replica at all (by the desired state). When not, the watch sleeps with no timer
   * until `wake()` (the daemon calls it after each new desired state); a primary has nothing to watch.
   */
  applies?(): boolean;
  /** Undefined when this instance is not a running replica (nothing to watch now). */
  replica(): Promise<ReplicaState | undefined>;
  /** The primary's timeline when it answers as a primary; undefined otherwise. */
  primaryTimeline(): Promise<number | undefined>;
}

export interface DivergenceTiming {
  readonly checkEveryMs: number;
  /** Not streaming this long before the primary is asked: a primary restart or a reconnect is not a fork. */
  readonly notStreamingForMs: number;
  /** After a rewind, leave the replica this long to catch up before judging it again. */
  readonly cooldownMs: number;
}

const defaultTiming: DivergenceTiming = { checkEveryMs: 3000, notStreamingForMs: 10_000, cooldownMs: 120_000 };

export class DivergenceWatch {
  private timer: QuietInterval | undefined;
  private notStreamingSince: number | undefined;
  private lastRewindAt = -Infinity;
  private checking = false;

  constructor(
    private readonly probe: DivergenceProbe,
    private readonly onDiverged: (timelines: { replica: number; primary: number }) => void,
    private readonly timing: DivergenceTiming = defaultTiming,
  ) {}

  start(): void {
    this.timer = quietInterval(() => this.check(), this.timing.checkEveryMs, () => this.probe.applies?.() !== false);
  }

  /** Re-reads `applies()` (after a new desired state): a demoted primary starts watching, a promoted replica stops. */
  wake(): void {
    this.timer?.wake();
  }

  stop(): void {
    this.timer?.stop();
  }

  /** One evaluation; true when it reported a divergence. */
  async check(now = Date.now()): Promise<boolean> {
    if (this.checking) return false;
    this.checking = true;
    try {
      const replica = await this.probe.replica().catch(() => undefined);
      if (replica === undefined || replica.streaming) {
        this.notStreamingSince = undefined;
        return false;
      }
      this.notStreamingSince ??= now;
      if (now - this.notStreamingSince < this.timing.notStreamingForMs || now - this.lastRewindAt < this.timing.cooldownMs) return false;
      const primary = await this.probe.primaryTimeline().catch(() => undefined);
      if (primary === undefined || primary <= replica.timeline) return false;
      this.lastRewindAt = now;
      this.notStreamingSince = undefined;
      this.onDiverged({ replica: replica.timeline, primary });
      return true;
    } finally {
      this.checking = false;
    }
  }
}
