import { readFile } from 'node:fs/promises';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { basename } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { BarmanObjectStore } from '../cluster/backup.js';
import { isAnyXlogFile, multipartChunkSize, multipartThreshold, parseDestination, tagging, walObjectKey } from './wal-object.js';

/**
 * pgim's own WAL upload: the object barman-cloud-wal-archive would write (wal-object.ts), sent with the AWS SDK
 * over kept-alive connections. One uploader serves many segments (the daemon keeps one; `pgim wal-archive`
 * without a daemon makes one for its segment). The SDK is imported here only, on first use: a pgim without an
 * object store never loads it.
 *
 * Credentials come from the settings' environment map, in memory, never from argv; `AWS_CA_BUNDLE` (the
 * endpointCA file) is read into the HTTPS agent.
 */
export interface WalUploader {
  /** Uploads one WAL file (`walPath` absolute, or relative to `cwd`). Throws with the reason. */
  upload(walPath: string): Promise<void>;
  close(): void;
}

type Sdk = typeof import('@aws-sdk/client-s3');
let sdk: Promise<Sdk> | undefined;
function loadSdk(): Promise<Sdk> {
  // The pinned SDK supports Node 20 (pgim's floor); its notice about later releases would land in the log on
  // every start of `pgim wal-archive`.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  // Bundled (scripts/bundle.ts), the CommonJS package's exports arrive as `default`; unbundled, as named exports.
  return (sdk ??= import('@aws-sdk/client-s3').then((m) => ('S3Client' in m ? m : (m as unknown as { default: Sdk }).default)));
}

/**
 * `signPayload`: SigV4 over the body's SHA-256 (the default over plain HTTP). Over HTTPS TLS already protects the
 * body, so pgim sends `UNSIGNED-PAYLOAD` as S3 allows (botocore does the same over HTTPS when the request carries a
 * checksum header): one SHA-256 pass over every 16 MiB segment less on each side, which on a loaded machine is a
 * good part of an upload's CPU. The stored object (bytes, ETag, metadata, tags) is the same either way.
 */
export async function createWalUploader(
  store: BarmanObjectStore,
  env: Readonly<Record<string, string>>,
  maxSockets = 16,
  signPayload = store.endpointURL?.startsWith('http://') === true,
): Promise<WalUploader> {
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
  // boto3 sends no Content-Type for an uploaded file object (the store records its default, binary/octet-stream);
  // the SDK would send application/octet-stream. Dropped before signing, so the object is Barman's. The payload
  // hash header, when set here, is what the signer uses instead of hashing the body.
  client.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string>; body?: unknown };
      if (request.headers !== undefined) {
        delete request.headers['content-type'];
        if (!signPayload && request.body !== undefined) request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      }
      return next(args);
    },
    { step: 'build', name: 'pgimNoContentType' },
  );
  const { bucket } = parseDestination(store.destinationPath);
  let bucketReady: Promise<void> | undefined;

  /** Barman's setup_bucket: HeadBucket once, CreateBucket (private; LocationConstraint outside us-east-1) on 404. */
  const setupBucket = async (): Promise<void> => {
    try {
      await client.send(new s3.HeadBucketCommand({ Bucket: bucket }));
    } catch (err) {
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== 404) throw err;
      await client.send(
        new s3.CreateBucketCommand({
          Bucket: bucket,
          ACL: 'private',
          ...(region === 'us-east-1' ? {} : { CreateBucketConfiguration: { LocationConstraint: region as never } }),
        }),
      );
    }
  };

  const upload = async (walPath: string): Promise<void> => {
    const walName = basename(walPath);
    if (!isAnyXlogFile(walName)) throw new Error(`${walPath} is an invalid name for a WAL file`);
    bucketReady ??= setupBucket().catch((err: unknown) => {
      bucketReady = undefined;
      throw err;
    });
    await bucketReady;
    const body = await readFile(walPath);
    const common = {
      Bucket: bucket,
      Key: walObjectKey(store, walName),
      ...(store.wal.encryption === undefined ? {} : { ServerSideEncryption: store.wal.encryption as never }),
    };
    const tags = tagging(store, walName);
    if (body.length < multipartThreshold) {
      await client.send(new s3.PutObjectCommand({ ...common, Body: body, ...(tags === undefined ? {} : { Tagging: tags }) }));
      return;
    }
    const created = await client.send(new s3.CreateMultipartUploadCommand({ ...common, ...(tags === undefined ? {} : { Tagging: tags }) }));
    const uploadId = created.UploadId;
    if (uploadId === undefined) throw new Error('the object store returned no UploadId');
    try {
      const parts = await Promise.all(
        Array.from({ length: Math.ceil(body.length / multipartChunkSize) }, async (_, i) => {
          const part = body.subarray(i * multipartChunkSize, (i + 1) * multipartChunkSize);
          const sent = await client.send(new s3.UploadPartCommand({ Bucket: bucket, Key: common.Key, UploadId: uploadId, PartNumber: i + 1, Body: part }));
          return { PartNumber: i + 1, ETag: sent.ETag };
        }),
      );
      await client.send(new s3.CompleteMultipartUploadCommand({ Bucket: bucket, Key: common.Key, UploadId: uploadId, MultipartUpload: { Parts: parts } }));
    } catch (err) {
      await client.send(new s3.AbortMultipartUploadCommand({ Bucket: bucket, Key: common.Key, UploadId: uploadId })).catch(() => undefined);
      throw err;
    }
  };

  return {
    upload,
    close: () => {
      client.destroy();
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}
