import { waitReadWrite, type Login } from '../pg.js';
import type { SystemKind } from './types.js';

/** One instance of a replicated cluster, as the switchover benchmark reaches it. */
export interface ClusterMember {
  /** pgim's pod name / Patroni's member name: also its `application_name` in `pg_stat_replication`. */
  readonly name: string;
  /** A superuser login: `pg_stat_replication` shows other roles no state. */
  readonly login: Login;
  readonly pgdata: string;
}

/** When a primary change was asked for, as seen from outside. */
export interface ChangeRequest {
  /** The command was launched (pgim switchover) or the HTTP request sent (Patroni). */
  issuedAt: number;
  /**
   * The new target primary was recorded: pgim's cluster.yaml was rewritten (its mtime); for Patroni the request
   * itself is what records it, so the same as `issuedAt`.
   */
  effectiveAt: number;
  /** The command returned (Patroni: its REST call answered, which it does only after the change, in 1 s steps). */
  returnedAt: number;
}

/**
 * Three instances of one system on 127.0.0.1, one primary and two streaming replicas. Methods return once the action
 * was issued; the benchmark polls PostgreSQL itself for the times.
 */
export interface ReplicatedCluster {
  readonly kind: SystemKind;
  readonly label: string;
  /** Replication in TLS, and TLS offered to clients (pgim always; Patroni only when configured so). */
  readonly tls: boolean;
  readonly members: readonly ClusterMember[];
  /** The managers' logs, for error messages. */
  readonly logFiles: readonly string[];
  /** Starts the first member (it bootstraps) and, once it is read-write, the others (they clone it). */
  start(): Promise<void>;
  /** A planned switchover from the current primary `from` to the replica `to`. */
  switchover(from: string, to: string): Promise<ChangeRequest>;
  /** After `killMember(from)`: makes `to` the primary. */
  failover(from: string, to: string): Promise<ChangeRequest>;
  /** A lost node: kill -9 of the member's manager and of its PostgreSQL; resolves when both are gone. */
  killMember(name: string): Promise<void>;
  /** Launches the member's manager again (after `killMember`). */
  restartMember(name: string): void;
  /** Stops whatever still runs (no timing) and removes the cluster's folder. */
  destroy(): Promise<void>;
}

export function memberNamed(cluster: ReplicatedCluster, name: string): ClusterMember {
  const member = cluster.members.find((m) => m.name === name);
  if (member === undefined) throw new Error(`${cluster.label} has no member ${name}`);
  return member;
}

/** What pgim's and Patroni's clusters share: members with a manager log, started first member first. */
export abstract class MemberCluster<M extends ClusterMember & { readonly logFile: string }> {
  abstract readonly label: string;

  constructor(readonly members: readonly M[]) {}

  abstract restartMember(name: string): void;

  get logFiles(): string[] {
    return this.members.map((m) => m.logFile);
  }

  protected member(name: string): M {
    const member = this.members.find((m) => m.name === name);
    if (member === undefined) throw new Error(`${this.label} cluster has no member ${name}`);
    return member;
  }

  /**
   * The first member bootstraps (initdb); the others start once it is read-write and clone it, as in a
   * StatefulSet (Patroni replicas started earlier would also race the leader for the initialize key).
   */
  async start(): Promise<void> {
    const [first, ...others] = this.members;
    if (first === undefined) return;
    this.restartMember(first.name);
    await waitReadWrite(first.login, 120_000);
    for (const member of others) this.restartMember(member.name);
  }
}
