import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { freePort, makeTempDir, removeTempDir, sleep } from '../env.js';

/** Every child this module started; killed on any process exit, so an aborted run leaves nothing behind. */
const liveChildren = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** etcd or kube-apiserver (or any control-plane process): output to a log file (read it when a test fails), stopped by PID. */
export class ManagedProcess {
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;
  private exitCode: number | null | undefined;

  constructor(
    readonly name: string,
    binary: string,
    args: string[],
    readonly logPath: string,
    options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
  ) {
    const fd = openSync(logPath, 'a');
    try {
      this.child = spawn(binary, args, { stdio: ['ignore', fd, fd], ...options });
    } finally {
      closeSync(fd);
    }
    liveChildren.add(this.child);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code) => {
        this.exitCode = code;
        liveChildren.delete(this.child);
        resolve(code);
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  async log(): Promise<string> {
    return readFile(this.logPath, 'utf8').catch(() => '');
  }

  /** SIGTERM by PID, then SIGKILL if it is still there after `timeoutMs`. */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timedOut = await Promise.race([this.exited.then(() => false), sleep(timeoutMs).then(() => true)]);
    if (timedOut) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}

export interface RawResponse {
  readonly status: number;
  readonly text: string;
  readonly body: unknown;
}

export interface RawRequest {
  readonly method?: string;
  readonly body?: unknown;
  readonly contentType?: string;
  readonly token?: string;
  readonly timeoutMs?: number;
}

/** One JSON request with a given CA and bearer token: the harness's own client, independent of the one under test. */
export function httpsJson(url: string, ca: string | undefined, options: RawRequest = {}): Promise<RawResponse> {
  const target = new URL(url);
  const payload = options.body === undefined ? undefined : Buffer.from(typeof options.body === 'string' ? options.body : JSON.stringify(options.body));
  const headers: Record<string, string | number> = { Accept: 'application/json' };
  if (options.token !== undefined) headers.Authorization = `Bearer ${options.token}`;
  if (payload !== undefined) {
    headers['Content-Type'] = options.contentType ?? 'application/json';
    headers['Content-Length'] = payload.length;
  }
  const send = target.protocol === 'http:' ? httpRequest : httpsRequest;
  return new Promise((resolve, reject) => {
    const req = send(target, { method: options.method ?? 'GET', headers, ...(ca === undefined ? {} : { ca }), signal: AbortSignal.timeout(options.timeoutMs ?? 10_000) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode ?? 0, text, body });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** Audit policy: metadata of every request made by a ServiceAccount (what pgim does), nothing else. */
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
`;

export interface AuditEvent {
  readonly verb: string;
  readonly stage: string;
  readonly user: { readonly username: string };
  readonly objectRef?: { readonly resource?: string; readonly subresource?: string; readonly namespace?: string; readonly name?: string; readonly apiGroup?: string };
  readonly responseStatus?: { readonly code?: number };
  readonly requestURI: string;
}

/**
 * A real etcd and kube-apiserver on 127.0.0.1 random ports, envtest-style: RBAC, a static admin token,
 * ServiceAccount signing keys (so the TokenRequest API mints real JWTs), PodSecurity admission, an audit log of
 * ServiceAccount requests. No controller-manager: namespaces never finish deleting, so tests use fresh ones.
 */
export interface TestApiServerOptions {
  /**
   * A kube-controller-manager will run (the operator end-to-end tests): keep the ServiceAccount admission plugin,
   * so pods get their projected token volume as in a real cluster.
   */
  readonly withControllerManager?: boolean;
  /** More kube-apiserver flags (the operator end-to-end tests: the CA of the test kubelet's serving certificate). */
  readonly extraArgs?: readonly string[];
}

export class TestApiServer {
  readonly adminToken = randomBytes(24).toString('hex');
  /** Wall time from kube-apiserver's spawn to its first 200 on /readyz, per start (restarts included). */
  readonly readyTimesMs: number[] = [];
  private etcd: ManagedProcess | undefined;
  private apiserver: ManagedProcess | undefined;
  private apiserverArgs: string[] = [];
  private etcdDataDir = '';
  port = 0;
  etcdPort = 0;
  caPem = '';

  private constructor(
    private readonly binDir: string,
    readonly dir: string,
    private readonly options: TestApiServerOptions,
  ) {}

  static async start(binDir: string, label: string, options: TestApiServerOptions = {}): Promise<TestApiServer> {
    const server = new TestApiServer(binDir, await makeTempDir(`k8s-${label}`), options);
    try {
      await server.boot();
      return server;
    } catch (err) {
      await server.stop();
      throw err;
    }
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  get auditLogPath(): string {
    return join(this.dir, 'audit.log');
  }

  get etcdPid(): number {
    return this.etcd?.pid ?? -1;
  }

  get apiserverPid(): number {
    return this.apiserver?.pid ?? -1;
  }

  private async boot(): Promise<void> {
    await mkdir(join(this.dir, 'certs'), { recursive: true });
    const { privateKey, publicKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    await writeFile(join(this.dir, 'sa.key'), privateKey, { mode: 0o600 });
    await writeFile(join(this.dir, 'sa.pub'), publicKey);
    await writeFile(join(this.dir, 'tokens.csv'), `${this.adminToken},admin,admin-uid,"system:masters"\n`, { mode: 0o600 });
    await writeFile(join(this.dir, 'audit-policy.yaml'), auditPolicy);
    // etcd on tmpfs when there is one: fsync-free and fast, and gone with the machine.
    this.etcdDataDir = existsSync('/dev/shm') ? await mkdtemp('/dev/shm/pgim-etcd-') : join(this.dir, 'etcd');
    // Picking a free port and then binding it can race with another process (R6): retry with new ports.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.startEtcd();
        await this.startApiServer();
        return;
      } catch (err) {
        await this.apiserver?.stop();
        await this.etcd?.stop();
        const log = `${(await this.etcd?.log()) ?? ''}\n${(await this.apiserver?.log()) ?? ''}`;
        if (attempt >= 3 || !/address already in use/.test(log)) throw err;
        await rm(this.etcdDataDir, { recursive: true, force: true });
        await mkdir(this.etcdDataDir, { recursive: true });
      }
    }
  }

  private async startEtcd(): Promise<void> {
    this.etcdPort = await freePort();
    const peerPort = await freePort();
    const client = `http://127.0.0.1:${this.etcdPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    this.etcd = new ManagedProcess(
      'etcd',
      join(this.binDir, 'etcd'),
      [
        '--name=t',
        `--data-dir=${this.etcdDataDir}`,
        `--listen-client-urls=${client}`,
        `--advertise-client-urls=${client}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=t=${peer}`,
        '--unsafe-no-fsync=true',
        '--log-level=warn',
      ],
      join(this.dir, 'etcd.log'),
    );
    await this.waitFor(this.etcd, 30_000, async () => {
      const res = await httpsJson(`${client}/health`, undefined, { timeoutMs: 1000 });
      return res.status === 200 && /"health":\s*"true"/.test(res.text);
    });
  }

  private async startApiServer(): Promise<void> {
    this.port = await freePort();
    const dir = this.dir;
    this.apiserverArgs = [
      `--etcd-servers=http://127.0.0.1:${this.etcdPort}`,
      '--etcd-prefix=/registry',
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${this.port}`,
      `--cert-dir=${join(dir, 'certs')}`,
      `--token-auth-file=${join(dir, 'tokens.csv')}`,
      '--authorization-mode=RBAC',
      `--service-account-issuer=https://127.0.0.1:${this.port}`,
      `--service-account-key-file=${join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--enable-admission-plugins=PodSecurity',
      // No controller-manager creates a default ServiceAccount; envtest turns this plugin off for that reason.
      ...(this.options.withControllerManager === true ? [] : ['--disable-admission-plugins=ServiceAccount']),
      '--endpoint-reconciler-type=none',
      `--audit-policy-file=${join(dir, 'audit-policy.yaml')}`,
      `--audit-log-path=${this.auditLogPath}`,
      '--allow-privileged=true',
      '--profiling=false',
      '--enable-priority-and-fairness=false',
      '--v=1',
      ...(this.options.extraArgs ?? []),
    ];
    await this.spawnApiServer();
  }

  private async spawnApiServer(): Promise<void> {
    const started = Date.now();
    const apiserver = new ManagedProcess('kube-apiserver', join(this.binDir, 'kube-apiserver'), this.apiserverArgs, join(this.dir, 'kube-apiserver.log'));
    this.apiserver = apiserver;
    const certPath = join(this.dir, 'certs', 'apiserver.crt');
    await this.waitFor(apiserver, 60_000, async () => {
      if (!existsSync(certPath)) return false;
      // The self-signed serving cert file holds the cert and its CA: trusting the file trusts the server.
      this.caPem = await readFile(certPath, 'utf8');
      const res = await httpsJson(`${this.url}/readyz`, this.caPem, { token: this.adminToken, timeoutMs: 2000 });
      return res.status === 200;
    });
    this.readyTimesMs.push(Date.now() - started);
  }

  private async waitFor(child: ManagedProcess, timeoutMs: number, ready: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!child.running) throw new Error(`${child.name} exited during start:\n${(await child.log()).slice(-3000)}`);
      if (await ready().catch(() => false)) return;
      if (Date.now() > deadline) throw new Error(`${child.name} not ready within ${timeoutMs} ms:\n${(await child.log()).slice(-3000)}`);
      await sleep(50);
    }
  }

  /** Stops kube-apiserver (etcd keeps the data), runs `meanwhile`, starts it again on the same port and certs. */
  async restartApiServer(meanwhile: () => Promise<void> = () => Promise.resolve()): Promise<void> {
    await this.apiserver?.stop();
    try {
      await meanwhile();
    } finally {
      // Even when `meanwhile` fails: later tests share this server.
      await this.spawnApiServer();
    }
  }

  async stopApiServer(): Promise<void> {
    await this.apiserver?.stop();
  }

  async startApiServerAgain(): Promise<void> {
    await this.spawnApiServer();
  }

  /**
   * Compacts etcd's history up to now (its JSON gateway): any watch that resumes from an older resourceVersion
   * gets 410 Gone, as after a long disconnection in a real cluster.
   */
  async compactEtcd(): Promise<number> {
    const base = `http://127.0.0.1:${this.etcdPort}`;
    const status = await httpsJson(`${base}/v3/kv/range`, undefined, { method: 'POST', body: { key: Buffer.from('/').toString('base64') } });
    const revision = Number((status.body as { header?: { revision?: string } } | undefined)?.header?.revision);
    if (!Number.isInteger(revision) || revision <= 0) throw new Error(`etcd revision unreadable: ${status.text}`);
    const compacted = await httpsJson(`${base}/v3/kv/compaction`, undefined, { method: 'POST', body: { revision: String(revision), physical: true } });
    if (compacted.status !== 200) throw new Error(`etcd compaction failed: ${compacted.status} ${compacted.text}`);
    return revision;
  }

  /** A JSON request as the admin (system:masters), or with another bearer token. */
  request(path: string, options: RawRequest = {}): Promise<RawResponse> {
    return httpsJson(`${this.url}${path}`, this.caPem, { token: this.adminToken, ...options });
  }

  /** A client-node KubeConfig for the admin. */
  adminKubeConfig(): KubeConfig {
    return this.kubeConfigFor({ token: this.adminToken });
  }

  /** A client-node KubeConfig for any bearer token (a ServiceAccount's, minted with TokenRequest). */
  kubeConfigFor(user: { token: string }): KubeConfig {
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromOptions({
      clusters: [{ name: 'test', server: this.url, caData: Buffer.from(this.caPem).toString('base64'), skipTLSVerify: false }],
      users: [{ name: 'user', token: user.token }],
      contexts: [{ name: 'test', cluster: 'test', user: 'user' }],
      currentContext: 'test',
    });
    return kubeConfig;
  }

  /** The kubeconfig YAML pgim gets: this server, its CA inline, the user's token (or a token file, re-read by pgim). */
  kubeconfigYaml(user: { token: string } | { tokenFile: string }, namespace: string): string {
    const credential = 'token' in user ? `token: ${user.token}` : `token-file: ${user.tokenFile}`;
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '  - name: test',
      '    cluster:',
      `      server: ${this.url}`,
      `      certificate-authority-data: ${Buffer.from(this.caPem).toString('base64')}`,
      'users:',
      '  - name: instance',
      '    user:',
      `      ${credential}`,
      'contexts:',
      '  - name: test',
      '    context:',
      '      cluster: test',
      '      user: instance',
      `      namespace: ${namespace}`,
      'current-context: test',
      '',
    ].join('\n');
  }

  /** The audit events so far (ServiceAccount requests only, per the policy). */
  async auditEvents(): Promise<AuditEvent[]> {
    const text = await readFile(this.auditLogPath, 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as AuditEvent];
        } catch {
          return [];
        }
      });
  }

  async apiserverLog(): Promise<string> {
    return (await this.apiserver?.log()) ?? '';
  }

  /** Kills both processes by PID and removes every folder this server used; safe to call twice. */
  async stop(): Promise<void> {
    await this.apiserver?.stop();
    await this.etcd?.stop();
    if (this.etcdDataDir.startsWith('/dev/shm/')) await rm(this.etcdDataDir, { recursive: true, force: true });
    if (process.env.PGIM_KEEP_K8S_DIRS !== '1') await removeTempDir(this.dir);
  }
}
