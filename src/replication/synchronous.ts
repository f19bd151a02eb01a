import type { SynchronousReplication } from '../cluster/synchronous.js';

/**
 * `synchronous_standby_names` as CloudNativePG computes it (`pkg/postgres/replication`), and the rule that tells
 * which replicas may be promoted without losing an acknowledged commit. Pure: the caller says who is primary and
 * which standbys stream.
 */

/** CNPG's SynchronousStandbyNamesConfig. */
export interface StandbyNamesConfig {
  readonly method: 'ANY' | 'FIRST';
  readonly number: number;
  readonly standbyNames: readonly string[];
}

export interface ClusterView {
  readonly clusterName: string;
  /** The instance that is (or is about to be) primary. */
  readonly primary: string;
  /** Every instance of the cluster (`<cluster>-1` ..). */
  readonly instances: readonly string[];
  /**
   * The standbys streaming from the primary (its pg_stat_replication), CNPG's "healthy" instances. Empty where it is
   * not known (on a replica, or before the primary's first look).
   */
  readonly streaming: readonly string[];
}

const placeholderSuffix = '-placeholder';

const sorted = (names: Iterable<string>): string[] => [...names].sort();

/** The streaming standbys that are instances of this cluster, the primary excluded, sorted (CNPG's order). */
function healthyStandbys(view: ClusterView): string[] {
  const instances = new Set(view.instances);
  return sorted(new Set(view.streaming.filter((name) => instances.has(name) && name !== view.primary)));
}

/** CNPG's getSortedInstanceNames: streaming standbys, then the other standbys, then the primary (each group sorted). */
function sortedInstanceNames(view: ClusterView): string[] {
  const healthy = healthyStandbys(view);
  const others = sorted(view.instances.filter((name) => name !== view.primary && !healthy.includes(name)));
  return [...healthy, ...others, ...(view.instances.includes(view.primary) ? [view.primary] : [])];
}

/** The configuration to apply; undefined: `synchronous_standby_names` stays empty (asynchronous standbys). */
export function synchronousStandbyNamesConfig(sync: SynchronousReplication, view: ClusterView): StandbyNamesConfig | undefined {
  if (sync === undefined) return undefined;
  if (sync.kind === 'legacy') {
    // CNPG's getSyncReplicasData: the target max, lowered to min when too few standbys stream, and to the number
    // streaming when even min is out of reach (self-healing: writes never wait for a standby that is not there).
    const electable = healthyStandbys(view);
    let number = sync.maxSyncReplicas;
    if (electable.length < number) number = sync.minSyncReplicas;
    if (electable.length < sync.minSyncReplicas) number = electable.length;
    number = Math.min(number, electable.length);
    return number > 0 ? { method: 'ANY', number, standbyNames: electable } : undefined;
  }
  const method = sync.method === 'any' ? 'ANY' : 'FIRST';
  const cap = (names: string[]): string[] => (sync.maxStandbyNamesFromCluster !== undefined && names.length > sync.maxStandbyNamesFromCluster ? names.slice(0, sync.maxStandbyNamesFromCluster) : names);
  if (sync.dataDurability === 'preferred') {
    // The list shrinks to the standbys that stream, and the number with it: a missing standby never blocks writes.
    const names = cap(healthyStandbys(view));
    if (names.length === 0) return undefined;
    return { method, number: Math.min(sync.number, names.length), standbyNames: names };
  }
  // Required: every instance is listed (the primary last, so the list holds after a switchover), whether it streams
  // or not: commits wait rather than lose durability.
  const names = [...sync.standbyNamesPre, ...cap(sortedInstanceNames(view)), ...sync.standbyNamesPost];
  return { method, number: sync.number, standbyNames: names.length > 0 ? names : [`${view.clusterName}${placeholderSuffix}`] };
}

/** A name as a double-quoted identifier: `"a""b"` (CNPG's escapePostgresConfLiteral). */
const quoteName = (name: string): string => `"${name.replaceAll('"', '""')}"`;

/** The value of `synchronous_standby_names`: `ANY 1 ("a","b")`; '' when undefined. */
export function formatSynchronousStandbyNames(config: StandbyNamesConfig | undefined): string {
  if (config === undefined || config.standbyNames.length === 0) return '';
  return `${config.method} ${config.number} (${config.standbyNames.map(quoteName).join(',')})`;
}

/**
 * What a failover must hear to be sure a replica holds every acknowledged commit. Each commit was acknowledged by
 * `number` of the listed standbys (CNPG's FailoverQuorum reasoning: R + W > N). The list the primary used may have
 * been any subset of the cluster's standbys (maxStandbyNamesFromCluster, the streaming ones first), plus the user's
 * external names, so the rule takes the widest list: N = standbys + external, R >= N - number + 1.
 */
export interface FailoverQuorum {
  /** The cluster's instances other than the failed primary: the ones that can answer. */
  readonly standbys: readonly string[];
  /** standbyNamesPre + standbyNamesPost: listed, outside the cluster, never asked. */
  readonly external: number;
  readonly number: number;
  /** `ANY 1`, `FIRST 2`, `minSyncReplicas 1`: for messages. */
  readonly rule: string;
}

/** Undefined: no commit waited for a standby (asynchronous, or legacy with minSyncReplicas 0): nothing to require. */
export function failoverQuorum(sync: SynchronousReplication, instances: readonly string[], failedPrimary: string): FailoverQuorum | undefined {
  if (sync === undefined) return undefined;
  const standbys = instances.filter((name) => name !== failedPrimary);
  if (sync.kind === 'legacy') {
    return sync.minSyncReplicas > 0 ? { standbys, external: 0, number: sync.minSyncReplicas, rule: `minSyncReplicas ${sync.minSyncReplicas}` } : undefined;
  }
  return {
    standbys,
    external: sync.standbyNamesPre.length + sync.standbyNamesPost.length,
    number: sync.number,
    rule: `${sync.method === 'any' ? 'ANY' : 'FIRST'} ${sync.number}`,
  };
}

/** N - k + 1: how many of the cluster's standbys must answer. */
export function requiredAnswers(quorum: FailoverQuorum): number {
  return quorum.standbys.length + quorum.external - quorum.number + 1;
}

/** One replica as the election sees it. */
export interface Candidate {
  readonly name: string;
  /** Answered, and in recovery (a replica). */
  readonly healthy: boolean;
  /** Its WAL receiver runs (a planned switchover wants a replica that follows the primary). */
  readonly streaming: boolean;
  /** pg_last_wal_receive_lsn (replay when it has received nothing since it started), as a number. */
  readonly receivedLsn: bigint;
  readonly replayedLsn: bigint;
  /** Why it is not healthy, for messages. */
  readonly problem?: string;
}

export type Election = { readonly target: string; readonly heard: readonly string[] } | { readonly refused: string };

/** `0/3000060` -> 0x3000060n. */
export function parseLsn(text: string): bigint {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  if (!match) throw new Error(`not an LSN: ${text}`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

/**
 * Chooses the new primary as CNPG's operator does: the most advanced healthy replica (received LSN, then replayed
 * LSN, then name). A failover under synchronous replication first needs N - k + 1 healthy listed standbys: then one
 * of them holds every acknowledged commit, and the most advanced holds them too (WAL is one line). Fewer: refused,
 * with the reason, rather than promote a replica that may lack data.
 */
export function electPrimary(candidates: readonly Candidate[], options: { failover: boolean; quorum: FailoverQuorum | undefined }): Election {
  const describe = (c: Candidate): string => `${c.name} (${c.problem ?? (c.streaming ? 'streaming' : 'not streaming')})`;
  const healthy = candidates.filter((c) => c.healthy && (options.failover || c.streaming));
  const { quorum } = options;
  if (options.failover && quorum !== undefined) {
    const needed = requiredAnswers(quorum);
    const heard = healthy.filter((c) => quorum.standbys.includes(c.name));
    if (heard.length < needed) {
      const listed = quorum.external > 0 ? `${quorum.standbys.length} standbys of the cluster and ${quorum.external} listed outside it` : `${quorum.standbys.length} standbys`;
      return {
        refused:
          `refusing to fail over: with ${quorum.rule} over ${listed}, every acknowledged commit is sure to be on one of ` +
          `${needed} answering replicas (N - k + 1), and ${heard.length} answered: ${candidates.map(describe).join(', ') || 'no replica'}. ` +
          'A replica that was not synchronous may lack acknowledged transactions; bring the others back, or name one with --to to accept the loss',
      };
    }
  }
  const best = [...healthy].sort((a, b) => (a.receivedLsn !== b.receivedLsn ? (a.receivedLsn > b.receivedLsn ? -1 : 1) : a.replayedLsn !== b.replayedLsn ? (a.replayedLsn > b.replayedLsn ? -1 : 1) : a.name.localeCompare(b.name)))[0];
  if (best === undefined) {
    return { refused: `no ${options.failover ? 'healthy' : 'streaming'} replica to promote: ${candidates.map(describe).join(', ') || 'the cluster has no other instance'}` };
  }
  return { target: best.name, heard: healthy.map((c) => c.name) };
}

/**
 * The Cluster status condition `SynchronousReplication` the primary reports: the synchronous set in effect and
 * whether enough listed standbys stream for commits to go through.
 */
export function synchronousCondition(config: StandbyNamesConfig | undefined, streaming: readonly string[]): { type: string; status: 'True' | 'False'; reason: string; message: string } {
  const type = 'SynchronousReplication';
  if (config === undefined) {
    return { type, status: 'False', reason: 'Asynchronous', message: 'synchronous_standby_names is empty: commits do not wait for a standby' };
  }
  const listed = config.standbyNames.filter((name) => streaming.includes(name));
  const enough = listed.length >= config.number;
  return {
    type,
    status: enough ? 'True' : 'False',
    reason: enough ? 'StandbysStreaming' : 'WaitingForStandbys',
    message: `synchronous_standby_names = ${formatSynchronousStandbyNames(config)}; streaming: ${listed.join(', ') || 'none'}${enough ? '' : ` (commits wait until ${config.number} of them stream)`}`,
  };
}
