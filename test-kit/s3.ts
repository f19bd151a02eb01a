import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { generateClusterCertificates } from '../src/tls/generate.js';
import { eventually, freePort, makeTempDir, removeTempDir } from './env.js';

/**
 * A real S3 server for the backup tests: versitygw (github.com/versity/versitygw, its posix backend), built by
 * scripts/build-versitygw.sh into ~/.cache/pgim/versitygw/<version>/, listening on 127.0.0.1 on a free port over a
 * temp folder, with one bucket. Optionally over TLS with a test CA (what `endpointCA` is for).
 */

export const versitygwVersion = 'v1.8.0';

export function versitygwBinary(): string | undefined {
  const explicit = process.env.PGIM_VERSITYGW;
  if (explicit !== undefined && explicit !== '') return explicit;
  const cached = join(homedir(), '.cache', 'pgim', 'versitygw', versitygwVersion, 'versitygw');
  return existsSync(cached) ? cached : undefined;
}

/** Whether barman-cli-cloud (with boto3) and versitygw are here; under CI=true their absence is a failure. */
export function backupPartsMissing(): string | undefined {
  const missing: string[] = [];
  try {
    execFileSync('barman-cloud-wal-archive', ['--version'], { stdio: 'ignore' });
  } catch {
    missing.push('barman-cli-cloud (Debian package; scripts/install-deps.sh installs it)');
  }
  if (versitygwBinary() === undefined) missing.push(`versitygw ${versitygwVersion} (scripts/build-versitygw.sh)`);
  return missing.length === 0 ? undefined : missing.join(', ');
}

/** In a `before` hook: skips the suite (loudly) when a backup part is missing; under CI=true that is a failure. */
export function requireBackupParts(context: Mocha.Context): void {
  const missing = backupPartsMissing();
  if (missing === undefined) return;
  if (process.env.CI === 'true') throw new Error(`backup test parts missing: ${missing}`);
  process.stderr.write(`\n!! SKIPPING the backup tests: missing ${missing}\n\n`);
  context.skip();
}

export interface S3ServerOptions {
  bucket?: string;
  tls?: boolean;
  /** Fixed credentials (a sentinel sweep wants to know them); random by default. */
  credentials?: { accessKey: string; secretKey: string };
  /**
   * Keep client connections open between requests (`--keep-alive`), as S3 does. versitygw's default closes every
   * connection after one request: each request then pays a TCP and TLS handshake on both sides.
   */
  keepAlive?: boolean;
}

export class S3Server {
  private child: ChildProcess | undefined;
  readonly output: string[] = [];

  private constructor(
    readonly root: string,
    readonly port: number,
    readonly bucket: string,
    readonly accessKey: string,
    readonly secretKey: string,
    /** PEM of the CA that signed the server certificate (TLS only). */
    readonly caPem: string | undefined,
    private readonly tlsFiles: { cert: string; key: string } | undefined,
    private readonly keepAlive = false,
  ) {}

  static async start(options: S3ServerOptions = {}): Promise<S3Server> {
    const root = await makeTempDir('s3');
    const bucket = options.bucket ?? 'backups';
    await mkdir(join(root, 'data', bucket), { recursive: true });
    let caPem: string | undefined;
    let tlsFiles: { cert: string; key: string } | undefined;
    if (options.tls === true) {
      const out = join(root, 'tls');
      await generateClusterCertificates({ cluster: 's3', instances: 1, hosts: ['127.0.0.1', 'localhost'], outDir: out });
      caPem = await readFile(join(out, 's3-ca', 'ca.crt'), 'utf8');
      tlsFiles = { cert: join(out, 's3-server', 'tls.crt'), key: join(out, 's3-server', 'tls.key') };
    }
    const suffix = Math.random().toString(36).slice(2, 10);
    const accessKey = options.credentials?.accessKey ?? `pgimtest${suffix}`;
    const secretKey = options.credentials?.secretKey ?? `secret-${suffix}-${Math.random().toString(36).slice(2)}`;
    const server = new S3Server(root, await freePort(), bucket, accessKey, secretKey, caPem, tlsFiles, options.keepAlive === true);
    await server.resume();
    return server;
  }

  get endpointURL(): string {
    return `${this.tlsFiles === undefined ? 'http' : 'https'}://127.0.0.1:${this.port}`;
  }

  /** Where the bucket's objects are on disk (`<bucket>/<path>` is a file). */
  get bucketDir(): string {
    return join(this.root, 'data', this.bucket);
  }

  destination(path: string): string {
    return `s3://${this.bucket}/${path}`;
  }

  /** The environment a plain barman-cloud tool needs to reach this server. */
  barmanEnv(caFile?: string): NodeJS.ProcessEnv {
    return {
      ...process.env,
      AWS_ACCESS_KEY_ID: this.accessKey,
      AWS_SECRET_ACCESS_KEY: this.secretKey,
      ...(caFile === undefined ? {} : { AWS_CA_BUNDLE: caFile }),
    };
  }

  /** (Re)starts the server on the same port and folder. Credentials go in its environment, not its argv. */
  async resume(): Promise<void> {
    const binary = versitygwBinary();
    if (binary === undefined) throw new Error(`versitygw ${versitygwVersion} is not built (scripts/build-versitygw.sh)`);
    const args = ['--port', `127.0.0.1:${this.port}`];
    if (this.tlsFiles !== undefined) args.push('--cert', this.tlsFiles.cert, '--key', this.tlsFiles.key);
    if (this.keepAlive) args.push('--keep-alive');
    args.push('posix', join(this.root, 'data'));
    this.child = spawn(binary, args, {
      env: { PATH: process.env.PATH, ROOT_ACCESS_KEY_ID: this.accessKey, ROOT_SECRET_ACCESS_KEY: this.secretKey },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    for (const stream of [this.child.stdout, this.child.stderr]) stream?.on('data', (chunk: Buffer) => this.output.push(chunk.toString()));
    const child = this.child;
    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`versitygw exited: ${this.output.join('')}`);
        const res = await fetch(`http://127.0.0.1:${this.port}/`).catch(() => undefined);
        // Plain HTTP to a TLS port fails at the HTTP layer; any TCP answer means it listens.
        return res !== undefined || this.tlsFiles !== undefined ? await this.listening() : undefined;
      },
      30_000,
      'versitygw listening',
    );
  }

  private listening(): Promise<true | undefined> {
    return new Promise((resolve) => {
      import('node:net').then(({ connect }) => {
        const socket = connect(this.port, '127.0.0.1');
        socket.once('connect', () => {
          socket.destroy();
          resolve(true);
        });
        socket.once('error', () => {
          resolve(undefined);
        });
      }, () => {
        resolve(undefined);
      });
    });
  }

  /** Stops the server (SIGTERM, then SIGKILL); its folder stays, so `resume` serves the same objects. */
  async pause(): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  async stop(): Promise<void> {
    await this.pause();
    await removeTempDir(this.root);
  }
}

/** The name of the files-mode Secret the backup tests keep the S3 credentials (and CA) in. */
export const backupSecretName = 'backup-creds';

/** `spec.backup` pointing at `server` under `path`, with CNPG's field names. */
export function backupSpec(server: S3Server, path: string, extra: { wal?: Record<string, unknown>; data?: Record<string, unknown>; retentionPolicy?: string; target?: string; serverName?: string } = {}): Record<string, unknown> {
  return {
    backup: {
      ...(extra.retentionPolicy === undefined ? {} : { retentionPolicy: extra.retentionPolicy }),
      ...(extra.target === undefined ? {} : { target: extra.target }),
      barmanObjectStore: {
        destinationPath: server.destination(path),
        endpointURL: server.endpointURL,
        ...(server.caPem === undefined ? {} : { endpointCA: { name: backupSecretName, key: 'ca.crt' } }),
        ...(extra.serverName === undefined ? {} : { serverName: extra.serverName }),
        s3Credentials: {
          accessKeyId: { name: backupSecretName, key: 'ACCESS_KEY_ID' },
          secretAccessKey: { name: backupSecretName, key: 'ACCESS_SECRET_KEY' },
        },
        wal: { maxParallel: 1, ...extra.wal },
        ...(extra.data === undefined ? {} : { data: extra.data }),
      },
    },
  };
}

/** The Secret's keys, as a files-mode folder or as Kubernetes `data`. */
export function backupSecretData(server: S3Server): Record<string, string> {
  return {
    ACCESS_KEY_ID: server.accessKey,
    ACCESS_SECRET_KEY: server.secretKey,
    ...(server.caPem === undefined ? {} : { 'ca.crt': server.caPem }),
  };
}

export async function writeBackupSecret(configDir: string, server: S3Server): Promise<void> {
  const { writeFile } = await import('node:fs/promises');
  const dir = join(configDir, 'secrets', backupSecretName);
  await mkdir(dir, { recursive: true });
  for (const [key, value] of Object.entries(backupSecretData(server))) await writeFile(join(dir, key), value);
}

/** Object names under `<bucket>/<path>/<serverName>/wals/`, e.g. `000000010000000000000003` (suffixes dropped). */
export async function archivedWalNames(server: S3Server, path: string, serverName: string): Promise<string[]> {
  const { readdir } = await import('node:fs/promises');
  const root = join(server.bucketDir, path, serverName, 'wals');
  const out: string[] = [];
  const strip = (file: string): string => file.replace(/\.(gz|bz2|snappy)$/, '');
  for (const entry of await readdir(root, { withFileTypes: true }).catch(() => [])) {
    // Segments sit in one folder per 4 GiB (`0000000100000000/`); history files at the top (`00000002.history`).
    if (!entry.isDirectory()) out.push(strip(entry.name));
    else for (const file of await readdir(join(root, entry.name)).catch(() => [] as string[])) out.push(strip(file));
  }
  return out.sort();
}
