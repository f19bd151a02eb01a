import { execFile, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { TestApiServer } from '../../test-kit/k8s/apiserver.js';
import { executable, locateK8sBinaries } from '../../test-kit/k8s/binaries.js';
import { installCrds } from '../../test-kit/k8s/fixtures.js';
import { cnpgDataDir, repoRoot } from '../../test-kit/k8s/paths.js';
import { isRoot } from '../env.js';

/** What the `cnpg` system needs besides the API server, found once per benchmark session. */
export interface CnpgTools {
  /** CloudNativePG v1.30.0's manager (scripts/build-cnpg-operator.sh): `instance init` and `instance run`. */
  manager: string;
  /** bench/cnpg-cluster-prep (scripts/build-cnpg-cluster-prep.sh): CNPG's Cluster defaults, Role and commands. */
  clusterPrep: string;
}

/**
 * The binary `variable` names (scripts/test.sh exports them), else one of the cached-build scripts: its last stdout
 * line is the path it built (instant on a cache hit).
 */
function scriptOutput(script: string, variable: string, log: (line: string) => void): Promise<string> {
  const given = process.env[variable];
  if (given !== undefined && given !== '') return Promise.resolve(given);
  return new Promise((resolve, reject) => {
    const child = spawn(join(repoRoot, 'scripts', script), [], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      for (const line of chunk.split('\n')) if (line.trim() !== '' && !line.includes('cached:')) log(line);
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      const path = stdout.trim().split('\n').pop() ?? '';
      if (code === 0 && path !== '') resolve(path);
      else reject(new Error(`scripts/${script} failed (exit ${String(code)}): ${stderr.trim().split('\n').slice(-3).join(' / ')}`));
    });
  });
}

/**
 * kube-apiserver and etcd (scripts/build-k8s-test-binaries.sh, or PGIM_K8S_BIN_DIR) and CloudNativePG's CRDs: what
 * both Kubernetes systems (`cnpg`, `pgim-k8s`) need, or why they cannot run here.
 */
export async function locateApiServer(): Promise<{ k8sBinDir: string } | { skipReason: string }> {
  if (!(await executable(join(cnpgDataDir, 'crds')))) return { skipReason: `CloudNativePG's CRDs are not in ${join(cnpgDataDir, 'crds')}` };
  const binaries = await locateK8sBinaries();
  return 'dir' in binaries ? { k8sBinDir: binaries.dir } : binaries;
}

/**
 * CNPG's manager and cluster-prep, or why `cnpg` cannot run here. Root is needed: each CNPG instance gets its own
 * mount and network namespaces and runs as the postgres user.
 */
export async function locateCnpgTools(log: (line: string) => void): Promise<CnpgTools | { skipReason: string }> {
  if (!isRoot) return { skipReason: 'not root (each CNPG instance runs in its own mount namespace, as the postgres user)' };
  try {
    const manager = await scriptOutput('build-cnpg-operator.sh', 'PGIM_CNPG_OPERATOR_BIN', log);
    const clusterPrep = await scriptOutput('build-cnpg-cluster-prep.sh', 'PGIM_CNPG_CLUSTER_PREP_BIN', log);
    for (const binary of [manager, clusterPrep]) if (!(await executable(binary))) return { skipReason: `${binary} is not executable` };
    return { manager, clusterPrep };
  } catch (err) {
    return { skipReason: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * One kube-apiserver (with its etcd) for the whole benchmark session, holding every CNPG CRD, started on first use:
 * each `cnpg` or `pgim-k8s` instance gets its own namespace in it. No controller-manager, scheduler, kubelet or
 * operator: the systems' setup does, once per instance, what CNPG's operator would have done.
 */
export class KubernetesPlane {
  private server: Promise<TestApiServer> | undefined;

  /** `cnpg`: CNPG's tools, when the `cnpg` system is part of the run. */
  constructor(
    private readonly k8sBinDir: string,
    private readonly cnpg?: CnpgTools,
  ) {}

  get cnpgTools(): CnpgTools {
    if (this.cnpg === undefined) throw new Error("cnpg: CloudNativePG's manager was not located for this session");
    return this.cnpg;
  }

  api(): Promise<TestApiServer> {
    this.server ??= (async () => {
      const server = await TestApiServer.start(this.k8sBinDir, 'bench');
      try {
        await installCrds(server, join(cnpgDataDir, 'crds'));
      } catch (err) {
        await server.stop();
        throw err;
      }
      return server;
    })();
    return this.server;
  }

  async stop(): Promise<void> {
    const server = await this.server?.catch(() => undefined);
    this.server = undefined;
    await server?.stop();
  }
}

const execFileAsync = promisify(execFile);

let networkSequence = 0;

/**
 * A pod's network for one instance: a named network namespace (`ip netns add`) joined to the host by a veth pair,
 * the pod at `podIp`, the host side at `hostIp` (a /30 of 10.x.y.0, x picked at random per session so that parallel
 * runs do not meet), and a TCP relay on `hostIp`:port to the API server on 127.0.0.1:port (it listens on loopback
 * only). Set up once per instance, off the clock; every start of the manager enters it (`nsenter --net`).
 */
export class PodNetwork {
  private static readonly subnet = randomInt(100, 250);

  private constructor(
    readonly name: string,
    private readonly hostLink: string,
    readonly hostIp: string,
    readonly podIp: string,
    private readonly relay: Server,
    private readonly sockets: Set<Socket>,
  ) {}

  get path(): string {
    return `/run/netns/${this.name}`;
  }

  static async create(apiPort: number): Promise<PodNetwork> {
    networkSequence += 1;
    const n = networkSequence;
    const name = `pgim-bench-${process.pid}-${n}`;
    const hostLink = `vpb${process.pid % 10000}n${n}`.slice(0, 15);
    const base = `10.${PodNetwork.subnet}.${Math.floor(n / 64) % 256}.${(n % 64) * 4}`.split('.').map(Number);
    const address = (last: number): string => `${base[0]}.${base[1]}.${base[2]}.${(base[3] ?? 0) + last}`;
    const hostIp = address(1);
    const podIp = address(2);
    const ip = (...args: string[]): Promise<unknown> => execFileAsync('ip', args);
    await ip('netns', 'add', name);
    try {
      await ip('link', 'add', hostLink, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name);
      await ip('addr', 'add', `${hostIp}/30`, 'dev', hostLink);
      await ip('link', 'set', hostLink, 'up');
      await ip('-n', name, 'addr', 'add', `${podIp}/30`, 'dev', 'eth0');
      await ip('-n', name, 'link', 'set', 'eth0', 'up');
      await ip('-n', name, 'link', 'set', 'lo', 'up');
    } catch (err) {
      await ip('netns', 'del', name).catch(() => undefined);
      throw err;
    }
    const sockets = new Set<Socket>();
    const relay = createServer((client) => {
      const upstream = createConnection({ host: '127.0.0.1', port: apiPort });
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      relay.once('error', reject);
      relay.listen(apiPort, hostIp, () => {
        resolve();
      });
    }).catch(async (err: unknown) => {
      await ip('netns', 'del', name).catch(() => undefined);
      throw err;
    });
    return new PodNetwork(name, hostLink, hostIp, podIp, relay, sockets);
  }

  /** Closes the relay and removes the namespace (and with it the veth pair). */
  async destroy(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.relay.close(() => {
      resolve();
    }));
    await execFileAsync('ip', ['netns', 'del', this.name]).catch(() => undefined);
    await execFileAsync('ip', ['link', 'del', this.hostLink]).catch(() => undefined);
  }
}
