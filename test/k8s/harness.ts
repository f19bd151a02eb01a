import { existsSync } from 'node:fs';
import { TestApiServer } from './apiserver.js';
import { isCi, locateK8sBinaries, type BinaryLookup } from './binaries.js';
import { installCrd } from './fixtures.js';
import { cnpgCrdPath, cnpgDataDir, pgimCrdPath } from './paths.js';

export interface CrdVariant {
  readonly key: 'pgim' | 'cnpg';
  readonly label: string;
  readonly crdPath: string;
}

/**
 * Both CRDs serve clusters.postgresql.cnpg.io, and one API server can hold only one of them: each variant gets its
 * own API server, started once per mocha run and stopped when its suites are done.
 */
export const crdVariants: readonly CrdVariant[] = [
  { key: 'pgim', label: "pgim's CRD (deploy/kubernetes/crd)", crdPath: pgimCrdPath },
  { key: 'cnpg', label: "CloudNativePG's real CRD", crdPath: cnpgCrdPath },
];

let lookup: Promise<BinaryLookup> | undefined;

function banner(lines: string[]): void {
  const bar = '!'.repeat(100);
  process.stderr.write(`\n${bar}\n${lines.map((line) => `!! ${line}`).join('\n')}\n${bar}\n\n`);
}

/**
 * In a `before` hook: the binaries' folder, or a skipped suite with a loud message. Under CI=true a missing binary
 * is a failure, never a skip.
 */
export async function requireK8sBinaries(context: Mocha.Context): Promise<string> {
  lookup ??= locateK8sBinaries();
  const found = await lookup;
  if ('dir' in found) return found.dir;
  if (isCi) throw new Error(`CI=true and the Kubernetes tests cannot run: ${found.skipReason}`);
  banner([
    'SKIPPING the Kubernetes integration tests: no kube-apiserver/etcd binaries.',
    found.skipReason,
    'Install Go >= 1.26 and run scripts/build-k8s-test-binaries.sh (about 4 min cold), or set PGIM_K8S_BIN_DIR.',
  ]);
  context.skip();
}

/** In a `before` hook of a CRD variant: skips loudly when CloudNativePG's CRD file is not where the tests read it. */
export function requireCrdFile(context: Mocha.Context, variant: CrdVariant): void {
  if (existsSync(variant.crdPath)) return;
  banner([
    `SKIPPING the suite against ${variant.label}: ${variant.crdPath} is missing.`,
    `The tests read CloudNativePG's CRD from ${cnpgDataDir} (set PGIM_CNPG_DATA_DIR to move it); it is not copied into the repository.`,
  ]);
  context.skip();
}

const servers = new Map<string, Promise<TestApiServer>>();

/** The API server for a CRD variant, started (and the CRD installed) on first use. */
export function apiServerFor(binDir: string, variant: CrdVariant): Promise<TestApiServer> {
  let server = servers.get(variant.key);
  if (server === undefined) {
    server = (async () => {
      const started = await TestApiServer.start(binDir, variant.key);
      try {
        await installCrd(started, variant.crdPath);
      } catch (err) {
        await started.stop();
        throw err;
      }
      process.stdout.write(`      [k8s] ${variant.label}: kube-apiserver ready in ${started.readyTimesMs[0] ?? -1} ms on ${started.url}\n`);
      return started;
    })();
    servers.set(variant.key, server);
  }
  return server;
}

export async function releaseApiServer(variant: CrdVariant): Promise<void> {
  const server = servers.get(variant.key);
  servers.delete(variant.key);
  const started = await server?.catch(() => undefined);
  if (!started) return;
  await started.stop();
  process.stdout.write(`      [k8s] ${variant.label}: stopped; kube-apiserver start to /readyz per start: ${started.readyTimesMs.join(', ')} ms\n`);
}

export async function releaseAllApiServers(): Promise<void> {
  for (const variant of crdVariants) await releaseApiServer(variant);
}
