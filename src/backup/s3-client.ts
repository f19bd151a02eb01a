import { readFile } from 'node:fs/promises';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { S3Client } from '@aws-sdk/client-s3';
import type { BarmanObjectStore } from '../cluster/backup.js';

/**
 * The S3 client pgim's own WAL upload (s3-wal-uploader.ts) and fetch (s3-wal-fetcher.ts) share: the AWS SDK over
 * kept-alive connections, configured as botocore configures Barman's. The SDK is imported on first use only: a pgim
 * without an object store never loads it.
 *
 * Credentials come from the settings' environment map, in memory, never from argv; `AWS_CA_BUNDLE` (the endpointCA
 * file) is read into the HTTPS agent.
 */
export type Sdk = typeof import('@aws-sdk/client-s3');

let sdk: Promise<Sdk> | undefined;
export function loadSdk(): Promise<Sdk> {
  // The pinned SDK supports Node 20 (pgim's floor); its notice about later releases would land in the log on
  // every start of `pgim wal-archive`.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  // Bundled (scripts/bundle.ts), the CommonJS package's exports arrive as `default`; unbundled, as named exports.
  return (sdk ??= import('@aws-sdk/client-s3').then((m) => ('S3Client' in m ? m : (m as unknown as { default: Sdk }).default)));
}

export interface StoreClient {
  readonly s3: Sdk;
  readonly client: S3Client;
  readonly region: string;
  readonly close: () => void;
}

export async function createStoreClient(store: BarmanObjectStore, env: Readonly<Record<string, string>>, maxSockets = 16): Promise<StoreClient> {
  const s3 = await loadSdk();
  const ca = env.AWS_CA_BUNDLE === undefined ? undefined : await readFile(env.AWS_CA_BUNDLE, 'utf8');
  const httpAgent = new HttpAgent({ keepAlive: true, maxSockets });
  const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets, ...(ca === undefined ? {} : { ca }) });
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  // botocore signs for us-east-1 when no region is configured; its custom endpoints use path-style addressing.
  const region = env.AWS_DEFAULT_REGION ?? env.AWS_REGION ?? 'us-east-1';
  const client: S3Client = new s3.S3Client({
    region,
    ...(store.endpointURL === undefined ? {} : { endpoint: store.endpointURL, forcePathStyle: true }),
    ...(accessKeyId !== undefined && secretAccessKey !== undefined
      ? { credentials: { accessKeyId, secretAccessKey, ...(env.AWS_SESSION_TOKEN === undefined ? {} : { sessionToken: env.AWS_SESSION_TOKEN }) } }
      : {}),
    // The boto3 Barman 3.4 runs with sends no checksum headers: neither does pgim (and S3-compatible stores that
    // lack the newer flexible checksums keep working).
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: { httpAgent, httpsAgent },
    maxAttempts: 3,
  });
  return {
    s3,
    client,
    region,
    close: () => {
      client.destroy();
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}

/** The HTTP status of an SDK error (404 for a missing bucket or key), if the store answered. */
export function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}
