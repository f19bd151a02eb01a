import { strict as assert } from 'node:assert';
import { eventually, freePort } from '../../test-kit/env.js';
import type { TestApiServer } from '../k8s/apiserver.js';
import { apiServerFor, crdVariants, releaseAllApiServers, requireCrdFile, requireK8sBinaries } from '../k8s/harness.js';
import { TcpProxy } from '../k8s/proxy.js';
import { ReplicatedK8sCluster } from '../k8s/replicated.js';

const clusterName = 'iso';
const [primary, replica] = ['iso-1', 'iso-2'] as const;

/**
 * `spec.probes.liveness.isolationCheck` on a real kube-apiserver with CloudNativePG's CRD: a primary and a replica
 * reach the API server through a relay the test closes (the API server unreachable for them only), and the replica's
 * pgim is paused (SIGSTOP: its status server accepts and never answers). The primary's /healthz fails only when both
 * are cut off, as CNPG's liveness pinger decides.
 */
describe('Kubernetes mode: the liveness isolation check (2 instances, CNPG CRD, real kube-apiserver)', function () {
  this.timeout(400_000);
  let server: TestApiServer;
  let proxy: TcpProxy;
  let cluster: ReplicatedK8sCluster;
  const cnpg = crdVariants.find((v) => v.key === 'cnpg');
  const healthz = async (name: string): Promise<{ status: number; body: string }> => {
    const res = await fetch(`${cluster.node(name).pgim.statusUrl}/healthz`);
    return { status: res.status, body: await res.text() };
  };

  before(async function () {
    const binDir = await requireK8sBinaries(this);
    if (cnpg === undefined) throw new Error('no CNPG CRD variant');
    requireCrdFile(this, cnpg);
    server = await apiServerFor(binDir, cnpg);
    proxy = new TcpProxy(await freePort(), server.port);
    await proxy.open();
    cluster = await ReplicatedK8sCluster.create(server, {
      namespacePrefix: 'iso',
      clusterName,
      instances: 2,
      appPassword: 'iso-app-pw',
      superuserPassword: 'iso-su-pw',
      apiServerPort: proxy.port,
      cluster: {
        smartShutdownTimeout: 1,
        stopDelay: 20,
        spec: { instances: 2, probes: { liveness: { isolationCheck: { enabled: true, requestTimeout: 500, connectionTimeout: 500 } } } },
      },
    });
    await cluster.start();
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(`\n${cluster.recentLogs()}\n`);
  });

  after(async () => {
    await proxy.open().catch(() => undefined);
    // A failed test must not leave a paused pgim behind.
    for (const name of [primary, replica]) ((cluster as ReplicatedK8sCluster | undefined)?.nodes.get(name)?.pgim)?.signal('SIGCONT');
    await (cluster as ReplicatedK8sCluster | undefined)?.dispose();
    await proxy.close();
    await releaseAllApiServers();
  });

  it('healthy with the API server and the peer reachable', async () => {
    assert.deepEqual(await healthz(primary), { status: 200, body: 'OK' });
    assert.deepEqual(await healthz(replica), { status: 200, body: 'OK' });
  });

  it('healthy when only the API server is unreachable: the peer answers', async () => {
    // The relay is the instances' only way to the API server (the next test shows the check sees it closed).
    await proxy.close();
    for (let i = 0; i < 3; i++) assert.deepEqual(await healthz(primary), { status: 200, body: 'OK' });
  });

  it('failing when the API server and the peer are both unreachable; a replica is never failed', async () => {
    cluster.node(replica).pgim.signal('SIGSTOP');
    const answer = await eventually(async () => {
      const reply = await healthz(primary);
      return reply.status === 500 ? reply : undefined;
    }, 30_000, "the primary's /healthz failing");
    assert.match(answer.body, /^liveness check failed: instance connectivity error for instance \[iso-2\] with ip \[127\.0\.0\.1\] \(requestTimeout:500 connectionTimeout:500\): no answer within 500 ms/);
    await cluster.node(primary).pgim.waitForLog(/Instance connectivity error - liveness probe failing/, 10_000);
    // The same isolation seen from the replica (its primary paused, no API server): a replica is never restarted.
    cluster.node(replica).pgim.signal('SIGCONT');
    cluster.node(primary).pgim.signal('SIGSTOP');
    try {
      assert.deepEqual(await healthz(replica), { status: 200, body: 'OK' });
    } finally {
      cluster.node(primary).pgim.signal('SIGCONT');
    }
    cluster.node(replica).pgim.signal('SIGSTOP');
  });

  it('healthy again once the API server answers, the unreachable peer only logged', async () => {
    await proxy.open();
    await eventually(async () => ((await healthz(primary)).status === 200 ? true : undefined), 30_000, "the primary's /healthz back to 200");
    await cluster.node(primary).pgim.waitForLog(/liveness probe succeeding because the API server is reachable/, 10_000);
    cluster.node(replica).pgim.signal('SIGCONT');
    assert.deepEqual(await healthz(replica), { status: 200, body: 'OK' });
  });
});
