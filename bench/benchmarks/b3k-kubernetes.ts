import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TestApiServer } from '../../test-kit/k8s/apiserver.js';
import { locateK8sBinaries } from '../../test-kit/k8s/binaries.js';
import { createShippedLease, installCrd } from '../../test-kit/k8s/fixtures.js';
import { K8sInstance } from '../../test-kit/k8s/instance.js';
import { pgimCrdPath } from '../../test-kit/k8s/paths.js';
import { clusterParameters, pollUntil } from '../pg.js';
import { measureIdleFootprints } from './b3-footprint.js';
import { withRunningDaemons, type RunningDaemon } from './daemons.js';
import type { Benchmark } from './types.js';

const label = 'pgim (Kubernetes mode)';

async function ready(url: string): Promise<boolean> {
  const response = await fetch(url, { signal: AbortSignal.timeout(1_000) });
  await response.arrayBuffer();
  return response.status === 200;
}

export const kubernetesFootprintBenchmark: Benchmark = {
  id: 'B3k',
  title: 'Idle footprint of the manager process, pgim in Kubernetes mode',
  measures:
    'B3 with one more pgim, in Kubernetes mode as in a pod: it reads and watches its Cluster and Secrets on the test ' +
    'kube-apiserver (the binaries of scripts/build-k8s-test-binaries.sh, pgim\'s CRD, the shipped Role, the ' +
    'in-cluster connection: a ServiceAccount folder and KUBERNETES_SERVICE_HOST/PORT), holds and renews the primary Lease ' +
    '(deploy/kubernetes/lease.yaml) and patches the Cluster status. It idles in the same windows as the ' +
    'floor, files-mode pgim and Patroni, scraped every 30 s like them. The API server itself is not counted.',
  async run(context, recorder) {
    if (!context.kinds.includes('pgim')) {
      context.note('B3k: needs pgim among the systems; skipped.');
      return;
    }
    const binaries = await locateK8sBinaries();
    if (!('dir' in binaries)) {
      context.note(`B3k: skipped, no kube-apiserver/etcd: ${binaries.skipReason}`);
      return;
    }
    await withRunningDaemons(context, async (daemons) => {
      const server = await TestApiServer.start(binaries.dir, 'bench');
      let instance: K8sInstance | undefined;
      const logFile = join(context.systems.workDir, 'pgim-kubernetes.log');
      try {
        await installCrd(server, pgimCrdPath);
        instance = await K8sInstance.create(server, {
          namespacePrefix: 'bench',
          clusterName: 'bench',
          appPassword: 'pgim-bench-k8s-app-pw',
          cluster: { smartShutdownTimeout: 5, stopDelay: 30, parameters: { ...clusterParameters } },
        });
        // The primary Lease, as the operator creates it: pgim holds it and renews it every 5 s, as in a pod.
        await createShippedLease(server, instance.namespace, 'bench');
        context.systems.processes.trackDataDirectory(instance.paths.pgdata);
        // In-cluster, as in a pod: a ServiceAccount folder and KUBERNETES_SERVICE_HOST/PORT (a kubeconfig file would load
        // @kubernetes/client-node to read it, which a pod never needs).
        const pgim = await instance.start({ kind: 'in-cluster' }, { env: { PGIM_LOG_LEVEL: 'info' } });
        const status = `http://127.0.0.1:${instance.ports.statusPort}`;
        await pollUntil(`${label} /readyz`, () => ready(`${status}/readyz`), 120_000);
        const daemon: RunningDaemon = {
          label,
          pid: pgim.pid,
          endpoints: { readiness: `${status}/readyz`, statusDocument: `${status}/pg/status`, metrics: `http://127.0.0.1:${instance.ports.metricsPort}/metrics` },
          logFile,
        };
        await measureIdleFootprints(context, recorder, [...daemons, daemon], 'B3k');
      } finally {
        if (instance?.pgim !== undefined) await writeFile(logFile, instance.pgim.lines.join('\n')).catch(() => undefined);
        await instance?.dispose().catch(() => undefined);
        await server.stop().catch(() => undefined);
      }
    });
  },
};
