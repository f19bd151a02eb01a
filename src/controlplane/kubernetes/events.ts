import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { errorMessage } from '../../errors/index.js';
import type { KubeClient } from './client.js';
import { actionFields, apiVersionOf, clusters, collectionPath, events, type ApiAction } from './resources.js';

export type EventType = 'Normal' | 'Warning';

/** Event messages are for people; the API server takes at most 1 KiB of them. */
const maxMessageLength = 1024;

export interface EventRecorderOptions {
  readonly client: KubeClient;
  readonly namespace: string;
  readonly clusterName: string;
  readonly podName: string;
  readonly logger: Logger;
  /** The Cluster's uid when known, so `kubectl describe cluster` lists the event. */
  readonly clusterUid: () => string | undefined;
}

/**
 * core/v1 Events on the Cluster (`kubectl describe cluster` and `kubectl get events` show them). The Role grants
 * `events create, patch` in the core group only, so these are core/v1, not events.k8s.io. Best effort: an event
 * that cannot be written is logged and dropped, never retried, never in the way of the instance.
 */
export class EventRecorder {
  constructor(private readonly options: EventRecorderOptions) {}

  async record(type: EventType, reason: string, message: string): Promise<void> {
    const { client, namespace, clusterName, podName, logger } = this.options;
    const now = new Date().toISOString();
    const uid = this.options.clusterUid();
    const action: ApiAction = { verb: 'create', type: events, namespace };
    const body = {
      apiVersion: 'v1',
      kind: 'Event',
      // client-go's naming: the object's name and a unique hex suffix.
      metadata: { name: `${clusterName}.${Date.now().toString(16)}${randomBytes(4).toString('hex')}`, namespace },
      involvedObject: {
        apiVersion: apiVersionOf(clusters),
        kind: clusters.kind,
        name: clusterName,
        namespace,
        ...(uid === undefined ? {} : { uid }),
      },
      reason,
      message: message.length > maxMessageLength ? `${message.slice(0, maxMessageLength - 1)}…` : message,
      type,
      source: { component: 'pgim', host: podName },
      reportingComponent: 'pgim',
      reportingInstance: podName,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    try {
      await client.request(action, 'POST', collectionPath(events, namespace), { body });
      logger.debug({ reason, type }, 'event recorded');
    } catch (err) {
      logger.warn({ ...actionFields(action), reason, error: errorMessage(err) }, 'could not record an event on the Cluster');
    }
  }
}
