import type { Logger } from 'pino';
import { errorMessage } from '../../errors/index.js';
import { Backoff } from '../../async/backoff.js';
import { sleep } from '../../async/sleep.js';
import { ApiError, isApiStatus, type KubeClient } from './client.js';
import { actionFields, asKubeObject, collectionPath, describeAction, objectPath, type ApiAction, type KubeObject, type ResourceType } from './resources.js';

export interface NamedObjectWatchOptions {
  readonly client: KubeClient;
  readonly type: ResourceType;
  readonly namespace: string;
  readonly name: string;
  readonly logger: Logger;
  /** Every state seen, from a GET or an event: the object, or undefined when it does not exist. */
  readonly onObserved: (object: KubeObject | undefined) => void;
  /** A fresh GET this often, whatever the watch says: the safety net for a watch that silently missed something. */
  readonly resyncMs: number;
}

/** Server-side watch timeout, spread like client-go's reflector (5 to 10 min) so pods do not reconnect together. */
function watchTimeoutSeconds(): number {
  return 300 + Math.floor(Math.random() * 300);
}

/** A watch that ended by itself sooner than this is treated like a failure (backoff), so it can never spin. */
const minHealthyWatchMs = 1000;

export async function getNamedObject(client: KubeClient, type: ResourceType, namespace: string, name: string, signal?: AbortSignal): Promise<KubeObject | undefined> {
  const action: ApiAction = { verb: 'get', type, namespace, name };
  try {
    return asKubeObject(await client.request(action, 'GET', objectPath(type, namespace, name), signal === undefined ? {} : { signal }));
  } catch (err) {
    if (isApiStatus(err, 404)) return undefined;
    throw err;
  }
}

/**
 * Follows one object by name: GET, then WATCH with `fieldSelector=metadata.name=<name>`. That is all a Role with
 * `resourceNames` allows: RBAC turns the field selector into the name, while a list or an unfiltered watch is
 * refused (so no informer: its first request is a LIST).
 *
 * - The stream ends (server timeout, dropped connection): watch again from the last resourceVersion seen (an
 *   event's or a bookmark's), so nothing in between is missed.
 * - 410 Gone (that version is no longer in the server's history): GET again and watch from now.
 * - Any other failure (API down, 403): log it naming verb/resource/name, back off (1 s doubling to 30 s), retry.
 *
 * Observations are reported as they come; deciding whether one is a change is the caller's job.
 */
export class NamedObjectWatch {
  private readonly stopper = new AbortController();

  constructor(private readonly options: NamedObjectWatchOptions) {}

  start(): void {
    void this.follow();
    void this.resync();
  }

  stop(): void {
    this.stopper.abort();
  }

  private get action(): ApiAction {
    return { verb: 'watch', type: this.options.type, namespace: this.options.namespace, name: this.options.name };
  }

  private async follow(): Promise<void> {
    const { client, type, namespace, name, logger, onObserved } = this.options;
    const signal = this.stopper.signal;
    const stopped = (): boolean => signal.aborted;
    const backoff = new Backoff(1000, 30_000);
    let resourceVersion: string | undefined;
    let needsGet = true;
    let failing = false;
    let expiredInARow = 0;
    while (!stopped()) {
      const started = Date.now();
      try {
        if (needsGet) {
          const object = await getNamedObject(client, type, namespace, name, signal);
          if (stopped()) return;
          onObserved(object);
          // Not the GET's resourceVersion: that is the object's last change, often older than the history the
          // server keeps (it compacts every few minutes), so a watch from it would only get 410. A watch from
          // "now" starts with the object's current state (a synthetic ADDED), so nothing after the GET is lost.
          resourceVersion = undefined;
          needsGet = false;
        }
        await client.watch(
          this.action,
          collectionPath(type, namespace),
          {
            fieldSelector: `metadata.name=${name}`,
            resourceVersion,
            allowWatchBookmarks: 'true',
            timeoutSeconds: String(watchTimeoutSeconds()),
          },
          (event) => {
            expiredInARow = 0;
            resourceVersion = event.object.metadata?.resourceVersion ?? resourceVersion;
            if (event.type === 'ADDED' || event.type === 'MODIFIED') onObserved(event.object);
            else if (event.type === 'DELETED') onObserved(undefined);
          },
          { signal, idleTimeoutMs: 11 * 60_000 },
        );
        if (failing) logger.info({ ...actionFields(this.action) }, `watching ${type.kind} ${name} again`);
        failing = false;
        if (Date.now() - started >= minHealthyWatchMs) {
          backoff.reset();
          continue;
        }
        await sleep(backoff.next(), signal);
      } catch (err) {
        if (stopped()) return;
        if (isApiStatus(err, 410)) {
          // The version we resume from has been compacted away: what happened meanwhile is only in a fresh GET.
          logger.info({ ...actionFields(this.action), resourceVersion }, `watch of ${type.kind} ${name} expired (410 Gone): reading it again`);
          needsGet = true;
          resourceVersion = undefined;
          expiredInARow += 1;
          // Never a tight loop, whatever the server answers.
          if (expiredInARow > 1) await sleep(backoff.next(), signal);
          continue;
        }
        failing = true;
        const delay = backoff.next();
        const refused = err instanceof ApiError && (err.status === 401 || err.status === 403);
        logger.warn(
          { ...actionFields(err instanceof ApiError ? err.action : this.action), error: errorMessage(err), retryInMs: delay, attempt: backoff.attempts },
          refused
            ? `the API server refused: ${describeAction(err.action)} (${String(err.status)} ${err.reason}); retrying with backoff`
            : `lost the watch of ${type.kind} ${name}; retrying with backoff`,
        );
        await sleep(delay, signal);
      }
    }
  }

  private async resync(): Promise<void> {
    const { client, type, namespace, name, logger, onObserved, resyncMs } = this.options;
    const signal = this.stopper.signal;
    const stopped = (): boolean => signal.aborted;
    while (!stopped()) {
      await sleep(resyncMs * (0.9 + Math.random() * 0.2), signal);
      if (stopped()) return;
      try {
        const object = await getNamedObject(client, type, namespace, name, signal);
        if (!stopped()) onObserved(object);
      } catch (err) {
        // The watch loop reports API trouble (with backoff); saying it twice would only add noise.
        logger.debug({ error: errorMessage(err) }, `periodic re-read of ${type.kind} ${name} failed`);
      }
    }
  }
}
