import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KubeClient } from '../../src/controlplane/kubernetes/client.js';
import { PrimaryLease } from '../../src/controlplane/kubernetes/lease.js';
import { PrimaryLeaseError } from '../../src/controlplane/types.js';
import { createRootLogger } from '../../src/log/logger.js';
import type { AuditEvent, TestApiServer } from '../k8s/apiserver.js';
import {
  applyInstanceIdentity,
  clusterObject,
  createCluster,
  createNamespace,
  createShippedLease,
  getCluster,
  leasesGroup,
  mintToken,
  namespacedPath,
  patchClusterStatus,
  putSecret,
  type Json,
} from '../k8s/fixtures.js';
import { apiServerFor, crdVariants, releaseAllApiServers, requireK8sBinaries } from '../k8s/harness.js';
import { eventually, freePort, handToPostgres, makeTempDir, removeTempDir, sleep } from '../../test-kit/env.js';
import { killPostmaster, PgimProcess, pgimEntry, query } from '../../test-kit/pgim.js';

const silent = createRootLogger({ pod: 'test', destination: { write: () => undefined } });

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

interface LeaseObject {
  readonly metadata: Json;
  readonly spec?: LeaseSpec;
  readonly [field: string]: unknown;
}

function leasePath(namespace: string, name?: string): string {
  return namespacedPath(namespace, 'leases', name, leasesGroup);
}

async function getLease(server: TestApiServer, namespace: string, name: string): Promise<LeaseObject | undefined> {
  const res = await server.request(leasePath(namespace, name));
  if (res.status === 404) return undefined;
  assert.equal(res.status, 200, res.text);
  return res.body as LeaseObject;
}

/** Sets the Lease's spec as another party would (the admin plays a foreign holder). */
async function setLeaseSpec(server: TestApiServer, namespace: string, name: string, spec: LeaseSpec): Promise<void> {
  const res = await server.request(leasePath(namespace, name), { method: 'PATCH', body: { spec }, contentType: 'application/merge-patch+json' });
  assert.equal(res.status, 200, res.text);
}

const microTimePattern = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

function serviceAccountRequests(events: AuditEvent[], namespace: string, name: string): AuditEvent[] {
  return events.filter((event) => event.user.username === `system:serviceaccount:${namespace}:${name}` && event.objectRef?.resource === 'leases');
}

describe('Kubernetes mode: the primary Lease (real kube-apiserver)', function () {
  let binDir = '';
  let server: TestApiServer;
  const variant = crdVariants.find((candidate) => candidate.key === 'pgim');

  before(async function () {
    this.timeout(40 * 60_000);
    binDir = await requireK8sBinaries(this);
    if (variant === undefined) throw new Error("pgim's CRD variant is missing");
    server = await apiServerFor(binDir, variant);
  });

  after(async () => {
    await releaseAllApiServers();
  });

  describe('the Lease API as the ServiceAccount (get and update only, named)', function () {
    let namespace: string;
    let client: KubeClient;
    const leases: PrimaryLease[] = [];
    const leaseFor = (name = 'db'): PrimaryLease => {
      const lease = new PrimaryLease({ client, namespace, name, logger: silent, renewIntervalMs: 300 });
      leases.push(lease);
      return lease;
    };

    before(async function () {
      this.timeout(60_000);
      namespace = await createNamespace(server, 'lease-api');
      await applyInstanceIdentity(server, namespace, 'db');
      client = new KubeClient({ credentials: server.kubeConfigFor({ token: await mintToken(server, namespace, 'db') }), server: server.url });
    });

    afterEach(() => {
      for (const lease of leases.splice(0)) lease.close();
    });

    it('a missing Lease: a clear error saying who must create it, and nothing is created', async () => {
      await assert.rejects(leaseFor().acquire('db-1'), (err: unknown) => {
        assert.ok(err instanceof PrimaryLeaseError);
        assert.equal(
          err.message,
          `Lease ${namespace}/db does not exist: the operator or deploy/kubernetes/lease.yaml must create it (pgim may only get and update it)`,
        );
        return true;
      });
      assert.equal(await getLease(server, namespace, 'db'), undefined);
    });

    it('takes the shipped Lease: holderIdentity, acquireTime and renewTime (MicroTime), leaseTransitions + 1; renews; releases', async () => {
      await createShippedLease(server, namespace, 'db');
      const lease = leaseFor();
      await lease.acquire('db-1');
      const taken = (await getLease(server, namespace, 'db'))?.spec;
      assert.equal(taken?.holderIdentity, 'db-1');
      assert.equal(taken.leaseDurationSeconds, 15);
      assert.equal(taken.leaseTransitions, 1);
      assert.match(taken.acquireTime ?? '', microTimePattern);
      assert.match(taken.renewTime ?? '', microTimePattern);
      const renewed = await eventually(
        async () => {
          const spec = (await getLease(server, namespace, 'db'))?.spec;
          return spec?.renewTime !== taken.renewTime ? spec : undefined;
        },
        5000,
        'renewTime to advance',
      );
      assert.equal(renewed.acquireTime, taken.acquireTime, 'a renewal keeps acquireTime');
      assert.equal(renewed.leaseTransitions, 1, 'a renewal is not a transition');
      await lease.release('db-1');
      const released = (await getLease(server, namespace, 'db'))?.spec;
      assert.equal(released?.holderIdentity, '');
      assert.equal(released.leaseDurationSeconds, 1);
      assert.equal(released.leaseTransitions, 1);
      await sleep(700);
      assert.equal((await getLease(server, namespace, 'db'))?.spec?.renewTime, released.renewTime, 'no renewal after the release');
    });

    it("refuses a fresh Lease of another holder, and takes it once it stayed unrenewed for its whole duration", async () => {
      await setLeaseSpec(server, namespace, 'db', { holderIdentity: 'intruder', leaseDurationSeconds: 2, renewTime: '2020-01-01T00:00:00.000000Z', leaseTransitions: 5 });
      const lease = leaseFor();
      const started = Date.now();
      let refusal: PrimaryLeaseError | undefined;
      await assert.rejects(lease.acquire('db-2'), (err: unknown) => {
        assert.ok(err instanceof PrimaryLeaseError);
        refusal = err;
        return true;
      });
      assert.equal(refusal?.message, `Lease ${namespace}/db is held by "intruder" and has not run out`);
      assert.ok(refusal.retryInMs !== undefined && refusal.retryInMs <= 2000 && refusal.retryInMs > 1500, String(refusal.retryInMs));
      await eventually(
        async () => {
          try {
            await lease.acquire('db-2');
            return true;
          } catch (err) {
            if (err instanceof PrimaryLeaseError) return undefined;
            throw err;
          }
        },
        5000,
        'the unrenewed Lease to be taken',
      );
      assert.ok(Date.now() - started >= 2000, 'not before a whole lease duration was watched');
      const spec = (await getLease(server, namespace, 'db'))?.spec;
      assert.equal(spec?.holderIdentity, 'db-2');
      assert.equal(spec.leaseTransitions, 6);
      await lease.release('db-2');
    });

    it('two concurrent acquirers: exactly one wins, every time (the resourceVersion lock; the loser saw 409)', async () => {
      const auditBefore = serviceAccountRequests(await server.auditEvents(), namespace, 'db').length;
      for (let round = 0; round < 5; round++) {
        await setLeaseSpec(server, namespace, 'db', { holderIdentity: '', leaseDurationSeconds: 1 });
        const a = leaseFor();
        const b = leaseFor();
        const results = await Promise.allSettled([a.acquire('db-a'), b.acquire('db-b')]);
        const winners = results.flatMap((result, index) => (result.status === 'fulfilled' ? [index === 0 ? 'db-a' : 'db-b'] : []));
        assert.equal(winners.length, 1, `round ${round}: ${JSON.stringify(results.map((result) => result.status))}`);
        const loser = results.find((result) => result.status === 'rejected');
        assert.ok(loser?.reason instanceof PrimaryLeaseError);
        assert.ok(loser.reason.message.includes(`is held by "${winners[0] ?? ''}"`), loser.reason.message);
        assert.equal((await getLease(server, namespace, 'db'))?.spec?.holderIdentity, winners[0]);
        a.close();
        b.close();
      }
      const updates = serviceAccountRequests(await server.auditEvents(), namespace, 'db').slice(auditBefore).filter((event) => event.verb === 'update');
      assert.ok(updates.some((event) => event.responseStatus?.code === 409), 'the API server refused a stale write with 409');
    });

    it('RBAC: the token may update its own Lease only; another name and create are 403, and the error names the rule', async () => {
      const other = await server.request(leasePath(namespace), { method: 'POST', body: { apiVersion: leasesGroup, kind: 'Lease', metadata: { name: 'other' }, spec: {} } });
      assert.equal(other.status, 201, other.text);
      await assert.rejects(leaseFor('other').acquire('db-1'), (err: unknown) => {
        assert.ok(err instanceof PrimaryLeaseError);
        assert.equal(
          err.message,
          `the API server refused: get leases.coordination.k8s.io "other" in namespace "${namespace}"; the Role needs verbs get and update on leases (apiGroup coordination.k8s.io) for resourceName "other"`,
        );
        return true;
      });
      const token = await mintToken(server, namespace, 'db');
      const current = await getLease(server, namespace, 'other');
      const update = await server.request(leasePath(namespace, 'other'), { method: 'PUT', token, body: { ...current, spec: { holderIdentity: 'db-1' } } });
      assert.equal(update.status, 403, 'update of another Lease');
      const create = await server.request(leasePath(namespace), { method: 'POST', token, body: { apiVersion: leasesGroup, kind: 'Lease', metadata: { name: 'new' }, spec: {} } });
      assert.equal(create.status, 403, 'create');
      const own = await getLease(server, namespace, 'db');
      const ownUpdate = await server.request(leasePath(namespace, 'db'), { method: 'PUT', token, body: { ...own, spec: { ...own?.spec, holderIdentity: '' } } });
      assert.equal(ownUpdate.status, 200, ownUpdate.text);
    });
  });

  describe('two instances: the target promotes only while it holds the Lease', function () {
    const clusterName = 'db';
    const appPassword = 'lease-app-pw';
    let namespace: string;
    let base = '';
    const nodes = new Map<string, { pgim: PgimProcess; pgPort: number; pgdata: string }>();

    const node = (name: string): { pgim: PgimProcess; pgPort: number; pgdata: string } => {
      const found = nodes.get(name);
      if (found === undefined) throw new Error(`no instance ${name}`);
      return found;
    };
    const inRecovery = async (name: string): Promise<boolean | undefined> => {
      try {
        const rows = await query<{ r: boolean }>(node(name).pgPort, 'app', appPassword, 'SELECT pg_is_in_recovery() AS r');
        return rows[0]?.r;
      } catch {
        return undefined;
      }
    };
    const waitPrimary = (name: string, timeoutMs: number): Promise<true> =>
      eventually(async () => ((await inRecovery(name)) === false ? true : undefined), timeoutMs, `${name} to be a primary`);
    const lease = async (): Promise<LeaseSpec> => (await getLease(server, namespace, clusterName))?.spec ?? {};
    const logged = (name: string, pattern: RegExp): Record<string, unknown>[] =>
      node(name)
        .pgim.records()
        .filter((record) => typeof record.msg === 'string' && pattern.test(record.msg));

    before(async function () {
      this.timeout(180_000);
      namespace = await createNamespace(server, 'lease-ha');
      base = await makeTempDir('k8s-lease');
      const ports = new Map<string, number>();
      for (const name of [`${clusterName}-1`, `${clusterName}-2`]) ports.set(name, await freePort());
      // The -hosts ConfigMap tells each instance where the other listens (one machine); the shipped Role does not
      // name it, so this test's Role does.
      await applyInstanceIdentity(server, namespace, clusterName, (role) => {
        const rules = role.rules as { resources: string[]; resourceNames?: string[] }[];
        rules.find((rule) => rule.resources.includes('configmaps'))?.resourceNames?.push(`${clusterName}-hosts`);
      });
      await putSecret(server, namespace, `${clusterName}-app`, { username: 'app', password: appPassword });
      await putSecret(server, namespace, `${clusterName}-superuser`, { username: 'postgres', password: 'unused-superuser-pw' });
      // The TLS Secrets pgim's certs command makes, uploaded as the operator would create them.
      const certs = join(base, 'certs');
      execFileSync(process.execPath, [pgimEntry, 'certs', '--cluster', clusterName, '--instances', '2', '--out', certs], { encoding: 'utf8' });
      for (const secret of await readdir(certs)) {
        const data: Record<string, string> = {};
        for (const key of await readdir(join(certs, secret))) data[key] = (await readFile(join(certs, secret, key))).toString('base64');
        const res = await server.request(namespacedPath(namespace, 'secrets'), { method: 'POST', body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: secret }, type: 'Opaque', data } });
        assert.equal(res.status, 201, res.text);
      }
      const hosts = Object.fromEntries([...ports].map(([name, port]) => [name, `127.0.0.1:${port}`]));
      const configMap = await server.request(namespacedPath(namespace, 'configmaps'), {
        method: 'POST',
        body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${clusterName}-hosts` }, data: hosts },
      });
      assert.equal(configMap.status, 201, configMap.text);
      await createCluster(server, namespace, clusterObject(clusterName, { smartShutdownTimeout: 1, stopDelay: 20, spec: { instances: 2, switchoverDelay: 20 } }));
      await createShippedLease(server, namespace, clusterName);
      const kube = join(base, 'kube');
      await mkdir(kube, { recursive: true });
      await writeFile(join(kube, 'kubeconfig'), server.kubeconfigYaml({ token: await mintToken(server, namespace, clusterName) }, namespace), { mode: 0o600 });
      await handToPostgres(kube);
      for (const [name, pgPort] of ports) {
        const paths = { configDir: '', pgdata: join(base, `pgdata-${name}`), runtimeDir: join(base, `runtime-${name}`) };
        const pgim = new PgimProcess(
          'run',
          paths,
          { pgPort, statusPort: await freePort(), metricsPort: await freePort() },
          ['--kubeconfig', join(kube, 'kubeconfig'), '--namespace', namespace, '--cluster-name', clusterName, '--pod-name', name],
          { KUBECONFIG: '' },
        );
        nodes.set(name, { pgim, pgPort, pgdata: paths.pgdata });
        // The primary first: the replica clones it.
        await pgim.waitReady(120_000);
      }
      assert.equal(await inRecovery(`${clusterName}-2`), true);
    });

    afterEach(function () {
      if (this.currentTest?.state !== 'failed') return;
      for (const [name, { pgim }] of nodes) {
        const lines = pgim.lines.filter((line) => !line.includes('"logger":"postgres"') && !line.includes('"logger":"pg_'));
        process.stderr.write(`\n--- pgim ${name}, last lines:\n${lines.slice(-40).join('\n')}\n`);
      }
    });

    after(async function () {
      this.timeout(120_000);
      for (const { pgim, pgdata } of nodes.values()) await pgim.stop().catch(() => killPostmaster(pgdata));
      if (base !== '') await removeTempDir(base);
    });

    it('a primary started as one takes the Lease too and renews it', async function () {
      this.timeout(30_000);
      const held = await eventually(async () => {
        const spec = await lease();
        return spec.holderIdentity === `${clusterName}-1` ? spec : undefined;
      }, 15_000, 'db-1 to hold the Lease');
      assert.equal(held.leaseTransitions, 1);
      await eventually(async () => ((await lease()).renewTime !== held.renewTime ? true : undefined), 10_000, 'db-1 to renew it');
    });

    it('a Lease held and renewed by another identity: the target stays a replica and says why; it promotes once the Lease runs out', async function () {
      this.timeout(120_000);
      const renewing = { on: true };
      const renewer = (async () => {
        while (renewing.on) {
          await setLeaseSpec(server, namespace, clusterName, { holderIdentity: 'intruder', leaseDurationSeconds: 3, renewTime: new Date().toISOString().replace('Z', '000Z') });
          await sleep(500);
        }
      })();
      try {
        await eventually(async () => ((await lease()).holderIdentity === 'intruder' ? true : undefined), 5000, 'the intruder to hold the Lease');
        // db-1 held it: its next renewal sees the other holder, and it stops renewing rather than overwrite it.
        await eventually(
          () => Promise.resolve(logged(`${clusterName}-1`, /is now held by "intruder": this instance no longer holds the primary Lease/).length > 0 ? true : undefined),
          10_000,
          'db-1 to notice it lost the Lease',
        );
        const transitionsBefore = (await lease()).leaseTransitions ?? 0;
        await patchClusterStatus(server, namespace, clusterName, { targetPrimary: `${clusterName}-2` });
        await eventually(() => Promise.resolve(logged(`${clusterName}-2`, /may not promote yet/).length > 0 ? true : undefined), 20_000, 'db-2 to refuse to promote');
        const refusal = logged(`${clusterName}-2`, /may not promote yet/)[0];
        assert.equal(refusal?.error, `Lease ${namespace}/${clusterName} is held by "intruder" and has not run out`);
        const status = await eventually(
          async () => {
            const current = (await getCluster(server, namespace, clusterName)).status;
            return current?.phase === 'Waiting for the primary Lease' ? current : undefined;
          },
          10_000,
          'the phase to say why',
        );
        assert.match(String(status.phaseReason), /held by "intruder"/);
        // Several retries while the intruder keeps renewing: never a promotion.
        for (let i = 0; i < 10; i++) {
          assert.notEqual(await inRecovery(`${clusterName}-2`), false, 'db-2 promoted while another instance held the Lease');
          await sleep(500);
        }
        assert.ok(logged(`${clusterName}-2`, /may not promote yet/).length >= 3, 'retried');
        renewing.on = false;
        await renewer;
        const stoppedAt = Date.now();
        await waitPrimary(`${clusterName}-2`, 30_000);
        assert.ok(Date.now() - stoppedAt >= 2500, 'the Lease was taken only after a whole duration without renewal');
        const taken = await lease();
        assert.equal(taken.holderIdentity, `${clusterName}-2`);
        assert.equal(taken.leaseDurationSeconds, 15);
        assert.equal(taken.leaseTransitions, transitionsBefore + 1);
        assert.match(taken.acquireTime ?? '', microTimePattern);
        await eventually(async () => ((await lease()).renewTime !== taken.renewTime ? true : undefined), 8000, 'the primary to renew the Lease');
        await eventually(async () => ((await getCluster(server, namespace, clusterName)).status?.phase === 'Cluster in healthy state' ? true : undefined), 15_000, 'healthy again');
        // The old primary follows: rewound and streaming from the new one.
        await eventually(async () => ((await inRecovery(`${clusterName}-1`)) === true ? true : undefined), 60_000, 'db-1 to run as a replica');
      } finally {
        renewing.on = false;
        await renewer;
      }
    });

    it('a planned switchover: the demoted primary frees the Lease once stopped, and the target takes it without waiting it out', async function () {
      this.timeout(120_000);
      const before = await lease();
      await patchClusterStatus(server, namespace, clusterName, { targetPrimary: `${clusterName}-1` });
      const started = Date.now();
      await waitPrimary(`${clusterName}-1`, 30_000);
      const elapsed = Date.now() - started;
      assert.ok(elapsed < 10_000, `promoted after ${elapsed} ms: it waited for the Lease to run out`);
      assert.ok(logged(`${clusterName}-2`, /^released the primary Lease/).length > 0, 'db-2 released the Lease');
      const taken = await lease();
      assert.equal(taken.holderIdentity, `${clusterName}-1`);
      assert.equal(taken.leaseTransitions, (before.leaseTransitions ?? 0) + 1);
      await eventually(async () => ((await inRecovery(`${clusterName}-2`)) === true ? true : undefined), 60_000, 'db-2 to run as a replica');
    });

    it('a missing Lease: the target does not promote and says who must create it; it promotes once the Lease exists', async function () {
      this.timeout(120_000);
      const removed = await server.request(leasePath(namespace, clusterName), { method: 'DELETE' });
      assert.equal(removed.status, 200, removed.text);
      await patchClusterStatus(server, namespace, clusterName, { targetPrimary: `${clusterName}-2` });
      await eventually(
        () => Promise.resolve(logged(`${clusterName}-2`, /does not exist: the operator or deploy\/kubernetes\/lease\.yaml must create it/).length > 0 ? true : undefined),
        30_000,
        'db-2 to say the Lease is missing',
      );
      for (let i = 0; i < 6; i++) {
        assert.notEqual(await inRecovery(`${clusterName}-2`), false, 'db-2 promoted without a Lease');
        await sleep(500);
      }
      assert.equal(await getLease(server, namespace, clusterName), undefined, 'pgim never creates the Lease');
      await createShippedLease(server, namespace, clusterName);
      await waitPrimary(`${clusterName}-2`, 30_000);
      assert.equal((await lease()).holderIdentity, `${clusterName}-2`);
      await eventually(async () => ((await inRecovery(`${clusterName}-1`)) === true ? true : undefined), 60_000, 'db-1 to run as a replica');
    });

    it('a clean stop of the primary frees the Lease; every Lease request was named and none was refused', async function () {
      this.timeout(60_000);
      const primary = node(`${clusterName}-2`);
      const exit = await primary.pgim.stop();
      assert.equal(exit.code, 0);
      const spec = await lease();
      assert.equal(spec.holderIdentity, '');
      assert.equal(spec.leaseDurationSeconds, 1);
      const requests = serviceAccountRequests(await server.auditEvents(), namespace, clusterName);
      assert.ok(requests.some((event) => event.verb === 'update'));
      for (const event of requests) {
        assert.equal(event.objectRef?.name, clusterName, `${event.verb} ${event.requestURI}`);
        assert.ok(event.verb === 'get' || event.verb === 'update', `${event.verb} ${event.requestURI}`);
        assert.notEqual(event.responseStatus?.code, 403, `${event.verb} ${event.requestURI}`);
      }
    });
  });
});
