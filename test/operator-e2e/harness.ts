import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { makeTempDir, removeTempDir, userIds, postgresUser, isRoot } from '../../test-kit/env.js';
import { pgimEntry } from '../../test-kit/pgim.js';
import { executable, isCi, locateK8sBinaries } from '../k8s/binaries.js';
import { cnpgDataDir, repoRoot } from '../k8s/paths.js';
import { ControlPlane } from './control-plane.js';
import { TestKubelet } from './kubelet.js';
import { CnpgOperator, installCnpgCrds, servingCertificates } from './operator.js';

export const cnpgCrdDir = join(cnpgDataDir, 'crds');

/** CloudNativePG's manager: `PGIM_CNPG_OPERATOR_BIN`, else scripts/build-cnpg-operator.sh (cached: instant). */
async function locateOperator(): Promise<{ binary: string } | { skipReason: string }> {
  const given = process.env.PGIM_CNPG_OPERATOR_BIN;
  if (given !== undefined && given !== '') {
    return (await executable(given)) ? { binary: given } : { skipReason: `PGIM_CNPG_OPERATOR_BIN=${given} is not executable` };
  }
  const script = join(repoRoot, 'scripts', 'build-cnpg-operator.sh');
  const out = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
    const child = spawn(script, [], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.once('error', () => {
      resolve({ code: null, stdout });
    });
    child.once('exit', (code) => {
      resolve({ code, stdout });
    });
  });
  const binary = out.stdout.trim().split('\n').pop() ?? '';
  if (out.code !== 0 || !(await executable(binary))) return { skipReason: `scripts/build-cnpg-operator.sh failed (exit ${String(out.code)})` };
  return { binary };
}

function banner(lines: string[]): void {
  const bar = '!'.repeat(100);
  process.stderr.write(`\n${bar}\n${lines.map((line) => `!! ${line}`).join('\n')}\n${bar}\n\n`);
}

/** Skips loudly (fails under CI=true) unless every binary, CNPG's CRDs and root (mount namespaces) are there. */
export async function requireOperatorE2e(context: Mocha.Context): Promise<{ k8sBinDir: string; operatorBinary: string }> {
  const reasons: string[] = [];
  const k8s = await locateK8sBinaries();
  let k8sBinDir = '';
  if ('dir' in k8s) {
    k8sBinDir = k8s.dir;
    for (const b of ['kube-controller-manager', 'kube-scheduler']) if (!(await executable(join(k8sBinDir, b)))) reasons.push(`${join(k8sBinDir, b)} is missing (scripts/build-k8s-test-binaries.sh builds it)`);
  } else {
    reasons.push(k8s.skipReason);
  }
  const operator = await locateOperator();
  if ('skipReason' in operator) reasons.push(operator.skipReason);
  if (!(await executable(cnpgCrdDir).catch(() => false))) reasons.push(`CloudNativePG's CRDs are not in ${cnpgCrdDir}`);
  if (!isRoot) reasons.push('the test kubelet needs root for mount namespaces (unshare -m) and to run containers as the postgres user');
  if (reasons.length === 0 && 'binary' in operator) return { k8sBinDir, operatorBinary: operator.binary };
  if (isCi) throw new Error(`CI=true and the CloudNativePG operator e2e tests cannot run: ${reasons.join('; ')}`);
  banner(['SKIPPING the CloudNativePG operator end-to-end tests:', ...reasons, 'Build with scripts/build-k8s-test-binaries.sh and scripts/build-cnpg-operator.sh (Go >= 1.26).']);
  context.skip();
}

/** The control plane, CNPG's operator and one test kubelet, started together and stopped together. */
export class OperatorHarness {
  private constructor(
    readonly plane: ControlPlane,
    readonly operator: CnpgOperator,
    readonly kubelet: TestKubelet,
    readonly dir: string,
    readonly timings: Record<string, number>,
  ) {}

  static async start(k8sBinDir: string, operatorBinary: string): Promise<OperatorHarness> {
    const timings: Record<string, number> = {};
    let t = Date.now();
    const dir = await makeTempDir('operator-e2e');
    const kubeletCerts = join(dir, 'kubelet-certs');
    await servingCertificates(kubeletCerts, 'kubelet');
    const plane = await ControlPlane.start(k8sBinDir, kubeletCerts);
    timings.controlPlaneMs = Date.now() - t;
    try {
      t = Date.now();
      await installCnpgCrds(plane.api, cnpgCrdDir);
      const operator = await CnpgOperator.start(plane.api, { binary: operatorBinary }, join(dir, 'operator'));
      timings.operatorMs = Date.now() - t;
      const user = userIds(postgresUser);
      const kubelet = new TestKubelet(plane.api, {
        nodeName: 'pgim-test-node',
        dir: join(dir, 'kubelet'),
        managerLauncher: `${process.execPath} ${pgimEntry}`,
        hostTrees: [resolve(dirname(pgimEntry), '..', '..')],
        ipPrefix: `127.${randomInt(100, 250)}.${randomInt(1, 250)}`,
        user,
        // Pods share the host's network namespace here: each binds only its own pod IP (see README).
        extraEnv: (podIP) => ({ PGIM_LISTEN_ADDRESS: podIP }),
        servingTls: { certFile: join(kubeletCerts, 'apiserver.crt'), keyFile: join(kubeletCerts, 'apiserver.key') },
      });
      await kubelet.start();
      return new OperatorHarness(plane, operator, kubelet, dir, timings);
    } catch (err) {
      await plane.stop();
      throw err;
    }
  }

  async diagnostics(): Promise<string> {
    const logs = await this.plane.logs();
    return [
      '=== operator log (tail)',
      (await this.operator.log()).slice(-6000),
      '=== kubelet events',
      this.kubelet.events.slice(-60).join('\n'),
      '=== kube-controller-manager (tail)',
      (logs['kube-controller-manager'] ?? '').slice(-2000),
    ].join('\n');
  }

  async stop(): Promise<void> {
    await this.kubelet.stop();
    await this.operator.stop();
    await this.plane.stop();
    if (process.env.PGIM_KEEP_K8S_DIRS !== '1') await removeTempDir(this.dir);
  }
}
