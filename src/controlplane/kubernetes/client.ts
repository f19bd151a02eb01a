import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createInterface } from 'node:readline';
import { errorMessage } from '../../errors/index.js';
import type { ApiConnection, RequestCredentials } from './config.js';
import { asKubeObject, describeAction, isRecord, type ApiAction, type KubeObject } from './resources.js';

/** A request must not hang a reconcile pass: an API server that stops answering is an error after this long. */
const defaultTimeoutMs = 10_000;
/** Larger than any object pgim reads (the API server caps an object at about 1.5 MiB). */
const maxBodyBytes = 4 * 1024 * 1024;
const userAgent = 'pgim';

/** The API server answered with an error status. `reason` is the Status reason (`Forbidden`, `Expired`, …). */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly reason: string,
    readonly action: ApiAction,
    readonly detail: string,
  ) {
    super(`${describeAction(action)}: ${status} ${reason}${detail === '' ? '' : `: ${detail}`}`);
  }
}

/** The request did not get an answer: connection refused or reset, TLS failure, timeout, unreadable token. */
export class TransportError extends Error {
  override readonly name = 'TransportError';
  constructor(
    readonly action: ApiAction,
    readonly problem: string,
  ) {
    super(`${describeAction(action)}: ${problem}`);
  }
}

export function isApiStatus(err: unknown, status: number): err is ApiError {
  return err instanceof ApiError && err.status === status;
}

/** `{kind: Status, code, reason, message}`, the body of every API error and of a watch ERROR event. */
function apiErrorFromStatus(status: number, body: unknown, action: ApiAction): ApiError {
  if (isRecord(body)) {
    const code = typeof body.code === 'number' ? body.code : status;
    const reason = typeof body.reason === 'string' && body.reason !== '' ? body.reason : 'Failure';
    const message = typeof body.message === 'string' ? body.message : '';
    return new ApiError(code, reason, action, message);
  }
  return new ApiError(status, 'Failure', action, '');
}

export interface WatchEvent {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  readonly object: KubeObject;
}

function parseWatchEvent(value: unknown): WatchEvent {
  if (!isRecord(value) || typeof value.type !== 'string') throw new Error('a watch event without a type');
  const type = value.type;
  if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED' && type !== 'BOOKMARK' && type !== 'ERROR') {
    throw new Error(`an unknown watch event type ${JSON.stringify(type)}`);
  }
  return { type, object: asKubeObject(value.object) };
}

export interface RequestOptionsIn {
  readonly query?: Readonly<Record<string, string | undefined>>;
  readonly body?: unknown;
  readonly contentType?: string;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface WatchOptions {
  readonly signal: AbortSignal;
  /** A stream silent for this long is treated as dead (a half-open TCP connection sends nothing, ever). */
  readonly idleTimeoutMs: number;
}

/**
 * A thin JSON client for the few calls pgim makes. The connection's credentials (client-node's KubeConfig for a
 * kubeconfig file, with its exec plugins; pgim's ServiceAccount reader in a pod) give the TLS trust and the
 * Authorization header; the requests themselves are plain HTTPS so every call has a
 * deadline, an abort signal and an error that names the verb, resource and object it was refused.
 */
export class KubeClient {
  private readonly credentials: RequestCredentials;
  readonly server: string;

  constructor(connection: Pick<ApiConnection, 'credentials' | 'server'>) {
    this.credentials = connection.credentials;
    this.server = connection.server;
  }

  async request(action: ApiAction, method: string, path: string, options: RequestOptionsIn = {}): Promise<unknown> {
    const body = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
    const headers: OutgoingHttpHeaders = { Accept: 'application/json', 'User-Agent': userAgent };
    if (body !== undefined) {
      headers['Content-Type'] = options.contentType ?? 'application/json';
      headers['Content-Length'] = body.length;
    }
    const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = options.signal === undefined ? timeout : AbortSignal.any([timeout, options.signal]);
    let text: string;
    let status: number;
    try {
      const response = await this.send(action, this.url(path, options.query), { method, headers, signal }, body);
      status = response.statusCode ?? 0;
      text = await readBody(response);
    } catch (err) {
      if (err instanceof TransportError && timeout.aborted) throw new TransportError(action, `no answer within ${timeoutMs} ms`);
      if (err instanceof TransportError) throw err;
      throw new TransportError(action, timeout.aborted ? `no answer within ${timeoutMs} ms` : errorMessage(err));
    }
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (status < 200 || status > 299) throw apiErrorFromStatus(status, parsed, action);
    return parsed;
  }

  /**
   * One watch request: calls `onEvent` for each event until the server ends the stream (resolves) or something
   * fails (rejects). An ERROR event rejects with its ApiError (410 Expired among them); so does an exception
   * thrown by `onEvent`.
   */
  async watch(
    action: ApiAction,
    path: string,
    query: Readonly<Record<string, string | undefined>>,
    onEvent: (event: WatchEvent) => void,
    options: WatchOptions,
  ): Promise<void> {
    const headers: OutgoingHttpHeaders = { Accept: 'application/json', 'User-Agent': userAgent };
    const response = await this.send(action, this.url(path, { ...query, watch: 'true' }), { method: 'GET', headers, signal: options.signal });
    if (response.statusCode !== 200) {
      const text = await readBody(response).catch(() => '');
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      throw apiErrorFromStatus(response.statusCode ?? 0, parsed, action);
    }
    response.socket.setKeepAlive(true, 30_000);
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const lines = createInterface({ input: response, crlfDelay: Infinity });
      const finish = (err?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(idle);
        options.signal.removeEventListener('abort', onAbort);
        lines.close();
        response.destroy();
        if (err === undefined) resolve();
        else reject(err);
      };
      const onAbort = (): void => {
        finish();
      };
      const idle = setTimeout(() => {
        finish(new TransportError(action, `watch stream silent for ${options.idleTimeoutMs} ms`));
      }, options.idleTimeoutMs);
      options.signal.addEventListener('abort', onAbort, { once: true });
      lines.on('line', (line) => {
        if (settled) return;
        idle.refresh();
        if (line.trim() === '') return;
        let event: WatchEvent;
        try {
          event = parseWatchEvent(JSON.parse(line));
        } catch (err) {
          finish(new TransportError(action, `unreadable watch event: ${errorMessage(err)}`));
          return;
        }
        if (event.type === 'ERROR') {
          finish(apiErrorFromStatus(500, event.object, action));
          return;
        }
        try {
          onEvent(event);
        } catch (err) {
          finish(err instanceof Error ? err : new Error(String(err)));
        }
      });
      // Both: readline re-emits its input's errors, and an unhandled 'error' event would end the process.
      response.on('error', (err) => {
        finish(new TransportError(action, errorMessage(err)));
      });
      lines.on('error', (err) => {
        finish(new TransportError(action, errorMessage(err)));
      });
      lines.on('close', () => {
        finish(response.complete ? undefined : new TransportError(action, 'watch stream cut off'));
      });
    });
  }

  private url(path: string, query: Readonly<Record<string, string | undefined>> = {}): URL {
    const url = new URL(`${this.server}${path}`);
    for (const [key, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(key, value);
    return url;
  }

  private async send(action: ApiAction, url: URL, base: RequestOptions, body?: Buffer): Promise<IncomingMessage> {
    const options: RequestOptions = { ...base };
    try {
      // TLS (CA, client certificates) and the Authorization header, from the kubeconfig or the pod's token.
      await this.credentials.applyToHTTPSOptions(options);
    } catch (err) {
      throw new TransportError(action, `cannot prepare credentials: ${errorMessage(err)}`);
    }
    return new Promise((resolve, reject) => {
      const request = (url.protocol === 'http:' ? httpRequest : httpsRequest)(url, options, resolve);
      request.on('error', (err) => {
        reject(new TransportError(action, errorMessage(err)));
      });
      request.end(body);
    });
  }
}

function readBody(response: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    response.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBodyBytes) {
        response.destroy(new Error(`response larger than ${maxBodyBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    response.on('end', () => {
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    response.on('error', reject);
    response.on('aborted', () => {
      reject(new Error('response aborted'));
    });
  });
}
