import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sleep } from '../../test-kit/env.js';
import { ManagedProcess, TestApiServer } from '../k8s/apiserver.js';

/**
 * A whole control plane on 127.0.0.1: etcd and kube-apiserver (test/k8s's TestApiServer, with the ServiceAccount
 * admission plugin on), kube-controller-manager (Jobs, ReplicaSets, EndpointSlices, PV binding, garbage collection,
 * kube-root-ca.crt) and kube-scheduler, all built from the Go module proxy at the same Kubernetes version.
 * No HTTPS port is opened by the controller-manager or the scheduler (`--secure-port=0`).
 */
export class ControlPlane {
  private constructor(
    readonly api: TestApiServer,
    private readonly controllerManager: ManagedProcess,
    private readonly scheduler: ManagedProcess,
    readonly adminKubeconfigPath: string,
  ) {}

  /**
   * `kubeletCertificates`: a folder holding the CA (`ca.crt`) the API server trusts for kubelets' serving
   * certificates (exec is proxied to the kubelet over HTTPS).
   */
  static async start(binDir: string, kubeletCertificates: string): Promise<ControlPlane> {
    const api = await TestApiServer.start(binDir, 'operator', { withControllerManager: true, extraArgs: [`--kubelet-certificate-authority=${join(kubeletCertificates, 'ca.crt')}`] });
    const kubeconfigPath = join(api.dir, 'admin.kubeconfig');
    try {
      await writeFile(kubeconfigPath, api.kubeconfigYaml({ token: api.adminToken }, 'default'), { mode: 0o600 });
      const common = [`--kubeconfig=${kubeconfigPath}`, '--secure-port=0', '--leader-elect=false', '--v=1'];
      const controllerManager = new ManagedProcess(
        'kube-controller-manager',
        join(binDir, 'kube-controller-manager'),
        [
          ...common,
          `--root-ca-file=${join(api.dir, 'certs', 'apiserver.crt')}`,
          `--service-account-private-key-file=${join(api.dir, 'sa.key')}`,
          // The test kubelet does not renew a node Lease: without the node lifecycle controller nothing marks its
          // Node NotReady or evicts its pods. Node IPAM needs a pod CIDR the test kubelet does not use.
          '--controllers=*,-nodelifecycle,-nodeipam',
          '--concurrent-job-syncs=5',
        ],
        join(api.dir, 'kube-controller-manager.log'),
      );
      const scheduler = new ManagedProcess('kube-scheduler', join(binDir, 'kube-scheduler'), common, join(api.dir, 'kube-scheduler.log'));
      const plane = new ControlPlane(api, controllerManager, scheduler, kubeconfigPath);
      await plane.waitForControllers();
      return plane;
    } catch (err) {
      await api.stop();
      throw err;
    }
  }

  /** The controller-manager is working once it has published kube-root-ca.crt in `default`. */
  private async waitForControllers(): Promise<void> {
    const deadline = Date.now() + 120_000;
    for (;;) {
      for (const proc of [this.controllerManager, this.scheduler]) {
        if (!proc.running) throw new Error(`${proc.name} exited during start:\n${(await proc.log()).slice(-3000)}`);
      }
      const res = await this.api.request('/api/v1/namespaces/default/configmaps/kube-root-ca.crt');
      if (res.status === 200) return;
      if (Date.now() > deadline) throw new Error(`kube-controller-manager did not publish kube-root-ca.crt:\n${(await this.controllerManager.log()).slice(-3000)}`);
      await sleep(250);
    }
  }

  async logs(): Promise<Record<string, string>> {
    return { 'kube-controller-manager': await this.controllerManager.log(), 'kube-scheduler': await this.scheduler.log() };
  }

  async stop(): Promise<void> {
    await this.scheduler.stop();
    await this.controllerManager.stop();
    await this.api.stop();
  }
}
