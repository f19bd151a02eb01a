import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { BarmanObjectStore } from '../cluster/backup.js';
import { createStoreClient, httpStatus } from './s3-client.js';
import { chooseWalObject, parseDestination, walObjectPrefix, type WalCompression } from './wal-object.js';

/**
 * pgim's own WAL download: what barman-cloud-wal-restore 3.4 does for one file (CloudWalDownloader.download_wal),
 * with the AWS SDK over kept-alive connections. The object is chosen among the keys under the WAL's prefix exactly
 * as Barman chooses it (wal-object.ts `chooseWalObject`); uncompressed and gzip objects are written here (Node's
 * zlib inflates to the very bytes Python's gzip does: decompression has one answer); bzip2 and snappy objects are
 * left to Barman (`{ delegate }`), which pgim cannot decode without another dependency.
 */
export type WalFetchResult = 'restored' | 'not-found' | { readonly delegate: WalCompression };

export interface WalFetcher {
  /** Writes `walName` at `destination`. Throws on a store or connectivity error (Barman's exit 2 and 4). */
  fetch(walName: string, destination: string, signal?: AbortSignal): Promise<WalFetchResult>;
  /** Barman's `bucket_exists`: false when the bucket is missing; throws when the store cannot be reached. */
  readonly checkBucket: (signal?: AbortSignal) => Promise<boolean>;
  readonly close: () => void;
}

export async function createWalFetcher(store: BarmanObjectStore, env: Readonly<Record<string, string>>, maxSockets = 16): Promise<WalFetcher> {
  const { s3, client, close } = await createStoreClient(store, env, maxSockets);
  const { bucket } = parseDestination(store.destinationPath);
  let bucketChecked = false;

  // Barman's `bucket_exists` on every call; a bucket seen once is not asked about again.
  const checkBucket = async (signal?: AbortSignal): Promise<boolean> => {
    if (bucketChecked) return true;
    try {
      await client.send(new s3.HeadBucketCommand({ Bucket: bucket }), signal === undefined ? {} : { abortSignal: signal });
      bucketChecked = true;
      return true;
    } catch (err) {
      if (httpStatus(err) === 404) return false;
      throw err;
    }
  };

  const fetch = async (walName: string, destination: string, signal?: AbortSignal): Promise<WalFetchResult> => {
    const options = signal === undefined ? {} : { abortSignal: signal };
    if (!(await checkBucket(signal))) return 'not-found';
    const prefix = walObjectPrefix(store, walName);
    // Barman lists the WAL's folder; listing under the WAL's own key gives the same candidates in the same order.
    const listed = await client.send(new s3.ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }), options);
    const chosen = chooseWalObject((listed.Contents ?? []).map((o) => o.Key ?? ''), prefix);
    if (chosen === undefined) return 'not-found';
    if (chosen.compression !== undefined && chosen.compression !== 'gzip') return { delegate: chosen.compression };
    const object = await client.send(new s3.GetObjectCommand({ Bucket: bucket, Key: chosen.key }), options);
    const body = object.Body as Readable | undefined;
    if (body === undefined) throw new Error(`the store returned no body for ${chosen.key}`);
    const out = createWriteStream(destination, { mode: 0o600 });
    try {
      if (chosen.compression === 'gzip') await pipeline(body, createGunzip(), out, options.abortSignal === undefined ? {} : { signal: options.abortSignal });
      else await pipeline(body, out, options.abortSignal === undefined ? {} : { signal: options.abortSignal });
    } catch (err) {
      await rm(destination, { force: true });
      throw err;
    }
    return 'restored';
  };

  return { fetch, checkBucket, close };
}
