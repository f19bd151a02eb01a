import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApiException, CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { FilesControlPlane } from '../../src/controlplane/files.js';
import { KubeClient } from '../../src/controlplane/kubernetes/client.js';
import { loadConnection } from '../../src/controlplane/kubernetes/config.js';
import { clusters } from '../../src/controlplane/kubernetes/resources.js';
import { patchStatusWithLock } from '../../src/controlplane/kubernetes/status.js';
import { openKubernetesControlPlane } from '../../src/controlplane/kubernetes.js';
import { resolveCredentials } from '../../src/credentials/index.js';
import { ConfigError } from '../../src/errors/index.js';
import { createRootLogger } from '../../src/log/logger.js';
import { eventually, freePort, handToPostgres, makeTempDir, removeTempDir, sleep } from '../../test-kit/env.js';
import { connect, query, type PgimProcess } from '../../test-kit/pgim.js';
import type { AuditEvent, RawResponse, TestApiServer } from '../k8s/apiserver.js';
import {
  applyInstanceIdentity,
  clusterObject,
  clustersGroup,
  createCluster,
  createNamespace,
  deployManifests,
  getCluster,
  listEvents,
  mintToken,
  namespacedPath,
  patchCluster,
  patchClusterStatus,
  putSecret,
  type Json,
} from '../k8s/fixtures.js';
import { apiServerFor, crdVariants, releaseAllApiServers, releaseApiServer, requireCrdFile, requireK8sBinaries } from '../k8s/harness.js';
import { K8sInstance, type Connection } from '../k8s/instance.js';
import { TcpProxy } from '../k8s/proxy.js';

const healthy = 'Cluster in healthy state';
const invalid = 'Invalid configuration';

interface PgStatus {
  postmasterPid: number;
  loadedConfigurationHash?: string;
  configurationError?: string;
}

async function pgStatus(pgim: PgimProcess): Promise<PgStatus> {
  return (await (await fetch(`${pgim.statusUrl}/pg/status`)).json()) as PgStatus;
}

async function show(port: number, password: string, setting: string): Promise<string> {
  const rows = await query<{ v: string }>(port, 'app', password, `SELECT current_setting('${setting}') AS v`);
  return rows[0]?.v ?? '';
}

function serviceAccountUser(namespace: string, name: string): string {
  return `system:serviceaccount:${namespace}:${name}`;
}

function byUser(events: AuditEvent[], user: string): AuditEvent[] {
  return events.filter((event) => event.user.username === user);
}

/** The log lines pgim wrote with this message prefix. */
function logged(pgim: PgimProcess, prefix: string): Record<string, unknown>[] {
  return pgim.records().filter((record) => typeof record.msg === 'string' && record.msg.startsWith(prefix));
}

function isForbidden(err: unknown): boolean {
  return err instanceof ApiException && err.code === 403;
}

describe('Kubernetes mode against a real kube-apiserver (etcd + kube-apiserver, RBAC, the least-privilege Role)', function () {
  let binDir = '';

  before(async function () {
    // A cold build of the binaries takes minutes; a cached one is instant.
    this.timeout(40 * 60_000);
    binDir = await requireK8sBinaries(this);
  });

  after(async () => {
    await releaseAllApiServers();
  });

  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return;
    for (const instance of K8sInstance.live) {
      process.stderr.write(`\n--- pgim ${instance.namespace}/${instance.clusterName}, last lines:\n${instance.recentLog()}\n`);
    }
  });

  for (const variant of crdVariants) {
    describe(`with ${variant.label}`, function () {
      let server: TestApiServer;

      before(async function () {
        this.timeout(120_000);
        requireCrdFile(this, variant);
        server = await apiServerFor(binDir, variant);
      });

      after(async () => {
        await releaseApiServer(variant);
      });

      describe('an instance bootstrapped and reconfigured from the API', function () {
        const clusterName = 'db';
        // One variant runs the real in-cluster code path, the other a kubeconfig with a token file pgim re-reads.
        const connection: Connection = variant.key === 'cnpg' ? { kind: 'in-cluster' } : { kind: 'kubeconfig', tokenFile: true };
        let instance: K8sInstance;
        let pgim: PgimProcess;
        let appPassword = `first-${variant.key}-pw`;

        const phase = async (): Promise<Json | undefined> => (await getCluster(server, instance.namespace, clusterName)).status;
        const waitPhase = (wanted: string, timeoutMs = 15_000): Promise<Json> =>
          eventually(async () => {
            const status = await phase();
            return status?.phase === wanted ? status : undefined;
          }, timeoutMs, `status.phase "${wanted}"`);

        before(async function () {
          this.timeout(120_000);
          instance = await K8sInstance.create(server, {
            namespacePrefix: `flow-${variant.key}`,
            clusterName,
            cluster: { smartShutdownTimeout: 1, stopDelay: 20 },
            appPassword,
          });
          pgim = await instance.start(connection);
          await pgim.waitReady(90_000);
        });

        after(async () => {
          await instance.dispose();
        });

        it(`bootstraps and serves PostgreSQL from the Cluster and Secrets it reads as the ServiceAccount (${connection.kind})`, async () => {
          const rows = await query<{ u: string }>(instance.ports.pgPort, 'app', appPassword, 'SELECT current_user AS u');
          assert.equal(rows[0]?.u, 'app');
          const starting = pgim.records().find((record) => record.msg === 'pgim starting');
          const description = String(starting?.controlPlane);
          assert.match(description, /^kubernetes:https:\/\/127\.0\.0\.1:\d+ cluster /);
          assert.ok(description.includes(`cluster ${instance.namespace}/${clusterName} (${connection.kind === 'in-cluster' ? 'in-cluster' : 'kubeconfig'}`), description);
          // Every request pgim made named its object (no namespace-wide list or watch), and none was refused but
          // reads of objects pgim treats as optional (and says so once in its log).
          const optional = new Set(logged(pgim, 'optional ').map((record) => String(record.name)));
          const requests = byUser(await server.auditEvents(), serviceAccountUser(instance.namespace, clusterName));
          assert.ok(requests.length > 0, 'the audit log has pgim requests');
          for (const event of requests) {
            const isEvent = event.objectRef?.resource === 'events' && event.verb === 'create';
            assert.ok(isEvent || (event.objectRef?.name ?? '') !== '', `unnamed request: ${event.verb} ${event.requestURI}`);
            if (event.responseStatus?.code !== 403) continue;
            assert.ok(event.verb === 'get' && optional.has(event.objectRef?.name ?? ''), `refused: ${event.verb} ${event.requestURI}`);
          }
          const watches = requests.filter((event) => event.verb === 'watch').map((event) => `${event.objectRef?.resource ?? ''}/${event.objectRef?.name ?? ''}`);
          assert.ok(watches.includes(`clusters/${clusterName}`), `watches: ${watches.join(', ')}`);
          assert.ok(watches.includes(`secrets/${clusterName}-app`), `watches: ${watches.join(', ')}`);
        });

        it('applies a Cluster change live (work_mem via SHOW), reloads once, and reports the phase on clusters/status', async () => {
          const before = await pgStatus(pgim);
          const changesBefore = logged(pgim, `Cluster ${clusterName} changed`).length;
          await patchCluster(server, instance.namespace, clusterName, { spec: { postgresql: { parameters: { work_mem: '7MB' } } } });
          await eventually(async () => ((await show(instance.ports.pgPort, appPassword, 'work_mem')) === '7MB' ? true : undefined), 10_000, 'work_mem = 7MB');
          const status = await waitPhase(healthy);
          assert.equal(status.phaseReason, '');
          const cluster = await getCluster(server, instance.namespace, clusterName);
          const managers = (cluster.metadata.managedFields as { manager?: string; subresource?: string }[] | undefined) ?? [];
          assert.ok(managers.some((entry) => entry.manager === 'pgim' && entry.subresource === 'status'), 'status written by field manager pgim');
          const events = await listEvents(server, instance.namespace);
          const applied = events.find((event) => event.reason === 'ConfigurationApplied');
          assert.ok(applied, `events: ${events.map((event) => event.reason).join(', ')}`);
          assert.equal(applied.type, 'Normal');
          assert.equal(applied.involvedObject.kind, 'Cluster');
          assert.equal(applied.involvedObject.name, clusterName);
          assert.equal(applied.involvedObject.uid, cluster.metadata.uid);
          assert.equal(applied.reportingComponent, 'pgim');
          // pgim's own status patch is a MODIFIED event on the Cluster too; it must not count as a change.
          await sleep(2000);
          assert.equal(logged(pgim, `Cluster ${clusterName} changed`).length - changesBefore, 1, 'one reload trigger for one change');
          assert.equal((await pgStatus(pgim)).postmasterPid, before.postmasterPid, 'reloaded, not restarted');
        });

        it('applies a Secret change live: the new password works, the old one fails', async () => {
          const old = appPassword;
          appPassword = `rotated-${variant.key}:pw\\with-colon`;
          await putSecret(server, instance.namespace, `${clusterName}-app`, { username: 'app', password: appPassword });
          await eventually(
            async () => {
              const client = await connect(instance.ports.pgPort, 'app', appPassword);
              await client.end();
              return true;
            },
            10_000,
            'the new password to work',
          );
          await assert.rejects(connect(instance.ports.pgPort, 'app', old), /password authentication failed/);
          assert.ok(!pgim.output.includes(appPassword), 'the password is never logged');
        });

        it('reports a setting PostgreSQL refuses as "Invalid configuration" with a Warning event, and keeps serving', async () => {
          await patchCluster(server, instance.namespace, clusterName, { spec: { postgresql: { parameters: { shared_buffers: 'lots' } } } });
          const status = await waitPhase(invalid);
          assert.match(String(status.phaseReason), /shared_buffers/);
          assert.ok(String(status.phaseReason).startsWith(`cluster ${instance.namespace}/${clusterName}: spec.postgresql.parameters: PostgreSQL refuses them`), String(status.phaseReason));
          const warning = (await listEvents(server, instance.namespace)).find((event) => event.reason === 'InvalidConfiguration');
          assert.equal(warning?.type, 'Warning');
          assert.equal(await show(instance.ports.pgPort, appPassword, 'work_mem'), '7MB', 'still on the last good configuration');
          // Back to the value it had: a different one would need a restart, reported as "Applying configuration".
          await patchCluster(server, instance.namespace, clusterName, { spec: { postgresql: { parameters: { shared_buffers: '16MB' } } } });
          await waitPhase(healthy);
        });

        it('reports a field pgim does not implement (spec.plugins) as "Invalid configuration", keeps the last good configuration', async () => {
          const plugins = [{ name: 'barman-cloud.cloudnative-pg.io' }];
          await patchCluster(server, instance.namespace, clusterName, { spec: { plugins, postgresql: { parameters: { work_mem: '8MB' } } } });
          const status = await waitPhase(invalid);
          assert.ok(String(status.phaseReason).startsWith(`cluster ${instance.namespace}/${clusterName}: spec.plugins: is not implemented by pgim`), String(status.phaseReason));
          assert.match(String((await pgStatus(pgim)).configurationError), /spec\.plugins: is not implemented by pgim/);
          assert.equal(await show(instance.ports.pgPort, appPassword, 'work_mem'), '7MB', 'still on the last good configuration');
          await patchCluster(server, instance.namespace, clusterName, { spec: { plugins: null, postgresql: { parameters: { work_mem: '7MB' } } } });
          await waitPhase(healthy);
        });

        it('survives an API server restart: the stale watch gets 410 Gone, pgim reads again and applies a later change', async function () {
          this.timeout(120_000);
          const before = await pgStatus(pgim);
          await server.restartApiServer(async () => {
            // API server down: PostgreSQL keeps serving on its last good configuration.
            assert.equal(await show(instance.ports.pgPort, appPassword, 'work_mem'), '7MB');
            // And etcd forgets the history pgim's watches would resume from.
            await server.compactEtcd();
          });
          await pgim.waitForLog(/watch of Cluster db expired \(410 Gone\)/, 60_000);
          await sleep(3000);
          // One expiry per followed object (the Cluster, each Secret), then a fresh watch: never a loop.
          const expiries = new Map<string, number>();
          for (const record of logged(pgim, 'watch of ')) {
            if (String(record.msg).includes('expired (410 Gone)')) expiries.set(String(record.name), (expiries.get(String(record.name)) ?? 0) + 1);
          }
          assert.ok([...expiries.values()].every((count) => count <= 2), JSON.stringify([...expiries]));
          await patchCluster(server, instance.namespace, clusterName, { spec: { postgresql: { parameters: { work_mem: '9MB' } } } });
          await eventually(async () => ((await show(instance.ports.pgPort, appPassword, 'work_mem')) === '9MB' ? true : undefined), 30_000, 'work_mem = 9MB');
          assert.equal((await pgStatus(pgim)).postmasterPid, before.postmasterPid, 'PostgreSQL kept running throughout');
          assert.ok(logged(pgim, 'lost the watch of Cluster db').length > 0, 'the dropped stream was logged');
        });

        it('stops cleanly on SIGTERM: exit 0, nothing of the API client keeps the process alive', async () => {
          const started = Date.now();
          const exit = await pgim.stop(30_000);
          assert.equal(exit.code, 0);
          assert.ok(Date.now() - started < 10_000, `stopped in ${Date.now() - started} ms`);
        });
      });

      describe('least privilege, proven with real requests as the ServiceAccount', function () {
        let namespace: string;
        let core: CoreV1Api;
        let custom: CustomObjectsApi;
        const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

        before(async function () {
          this.timeout(60_000);
          namespace = await createNamespace(server, `rbac-${variant.key}`);
          await applyInstanceIdentity(server, namespace, 'db');
          await putSecret(server, namespace, 'db-app', { username: 'app', password: 'a' });
          await createCluster(server, namespace, clusterObject('db'));
          // Another Cluster in the same namespace, with its own Secret.
          await putSecret(server, namespace, 'other-app', { username: 'app', password: 'b' });
          await createCluster(server, namespace, clusterObject('other'));
          const serviceAccount = server.kubeConfigFor({ token: await mintToken(server, namespace, 'db') });
          core = serviceAccount.makeApiClient(CoreV1Api);
          custom = serviceAccount.makeApiClient(CustomObjectsApi);
        });

        it('may read its own Secret and Cluster and patch its own status', async () => {
          const secret = await core.readNamespacedSecret({ name: 'db-app', namespace });
          assert.equal(Buffer.from(secret.data?.password ?? '', 'base64').toString(), 'a');
          const cluster = (await custom.getNamespacedCustomObject({ group: 'postgresql.cnpg.io', version: 'v1', namespace, plural: 'clusters', name: 'db' })) as Json;
          assert.equal((cluster.metadata as Json).name, 'db');
          await custom.patchNamespacedCustomObjectStatus(
            { group: 'postgresql.cnpg.io', version: 'v1', namespace, plural: 'clusters', name: 'db', body: { status: { phase: 'Setting up primary' } } },
            mergePatch,
          );
        });

        it('gets 403 listing Secrets', async () => {
          await assert.rejects(core.listNamespacedSecret({ namespace }), isForbidden);
        });

        it("gets 403 reading another cluster's Secret", async () => {
          await assert.rejects(core.readNamespacedSecret({ name: 'other-app', namespace }), isForbidden);
        });

        it("gets 403 patching another Cluster's status", async () => {
          await assert.rejects(
            custom.patchNamespacedCustomObjectStatus(
              { group: 'postgresql.cnpg.io', version: 'v1', namespace, plural: 'clusters', name: 'other', body: { status: { phase: 'hijacked' } } },
              mergePatch,
            ),
            isForbidden,
          );
          assert.equal((await getCluster(server, namespace, 'other')).status?.phase, undefined);
        });

        it('gets 403 creating pods', async () => {
          const [pod] = await deployManifests('pod.yaml', 'db');
          await assert.rejects(core.createNamespacedPod({ namespace, body: pod as never, dryRun: 'All' }), isForbidden);
        });
      });

      if (variant.key !== 'pgim') return;

      describe('the pod template under PodSecurity "restricted"', function () {
        let namespace: string;
        const dryRunCreate = async (pod: Json): Promise<RawResponse> =>
          server.request(`${namespacedPath(namespace, 'pods')}?dryRun=All&fieldValidation=Strict`, { method: 'POST', body: pod });

        before(async () => {
          namespace = await createNamespace(server, 'psa', {
            'pod-security.kubernetes.io/enforce': 'restricted',
            'pod-security.kubernetes.io/enforce-version': 'latest',
            'pod-security.kubernetes.io/warn': 'restricted',
          });
        });

        it('deploy/kubernetes/pod.yaml passes a server-side dry-run create', async () => {
          const [pod] = await deployManifests('pod.yaml', 'db');
          const res = await dryRunCreate(pod!);
          assert.equal(res.status, 201, res.text);
        });

        it('a variant that runs as root is rejected', async () => {
          const [pod] = await deployManifests('pod.yaml', 'db');
          const spec = pod!.spec as { securityContext: Json };
          spec.securityContext.runAsUser = 0;
          const res = await dryRunCreate(pod!);
          assert.equal(res.status, 403, res.text);
          assert.match(String((res.body as { message?: unknown }).message), /violates PodSecurity "restricted:latest": runAsUser=0/);
        });
      });

      describe('the same data and messages as files mode', function () {
        let namespace: string;
        let base: string;
        let files: FilesControlPlane;
        let kube: Awaited<ReturnType<typeof openKubernetesControlPlane>>;
        // Every byte value, a NUL and invalid UTF-8 included: a Secret's data is bytes, not text.
        const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

        before(async function () {
          this.timeout(60_000);
          namespace = await createNamespace(server, 'parity');
          await applyInstanceIdentity(server, namespace, 'db');
          const cluster = clusterObject('db', { spec: { enableSuperuserAccess: true } });
          await createCluster(server, namespace, cluster);
          await server.request(namespacedPath(namespace, 'secrets'), {
            method: 'POST',
            body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db-app' }, data: { username: Buffer.from('app').toString('base64'), 'blob.bin': binary.toString('base64') } },
          });
          await putSecret(server, namespace, 'db-superuser', { username: 'postgres', password: 'pw\nwith a line break' });
          // The same objects, laid out as files mode's folder.
          base = await makeTempDir('k8s-parity');
          await mkdir(join(base, 'secrets', 'db-app'), { recursive: true });
          await mkdir(join(base, 'secrets', 'db-superuser'), { recursive: true });
          await writeFile(join(base, 'cluster.yaml'), stringify(cluster));
          await writeFile(join(base, 'secrets', 'db-app', 'username'), 'app');
          await writeFile(join(base, 'secrets', 'db-app', 'blob.bin'), binary);
          await writeFile(join(base, 'secrets', 'db-superuser', 'username'), 'postgres');
          await writeFile(join(base, 'secrets', 'db-superuser', 'password'), 'pw\nwith a line break');
          files = new FilesControlPlane(base);
          const kubeconfig = join(base, 'kubeconfig');
          await writeFile(kubeconfig, server.kubeconfigYaml({ token: await mintToken(server, namespace, 'db') }, namespace), { mode: 0o600 });
          const logger = createRootLogger({ pod: 'test', destination: { write: () => undefined } });
          kube = await openKubernetesControlPlane({ kubernetes: { kubeconfig, namespace: undefined, clusterName: 'db' }, podName: 'db-1', logger });
        });

        after(async () => {
          await removeTempDir(base);
        });

        it('reads a Secret as the same bytes, keys and order', async () => {
          const fromApi = await kube.readSecret('db-app');
          const fromFiles = await files.readSecret('db-app');
          assert.ok(fromApi && fromFiles);
          assert.deepEqual([...fromApi.keys()], [...fromFiles.keys()]);
          assert.deepEqual(fromApi.get('blob.bin'), binary);
          assert.deepEqual(fromApi, fromFiles);
          // Granted by the Role but never created: absent, as in files mode.
          assert.equal(await kube.readSecret('db-replication'), undefined);
          assert.equal(await files.readSecret('db-replication'), undefined);
          // Not granted at all: absent only when the caller says the object is optional.
          await assert.rejects(kube.readSecret('db-nothing-here'), /get secrets "db-nothing-here" in namespace "[^"]+": 403 Forbidden/);
          assert.equal(await kube.readConfigMap('db-hosts', { optional: true }), undefined);
        });

        it('resolves the same Cluster and refuses the same Secrets with the same messages', async () => {
          const fromApi = await kube.readCluster();
          const fromFiles = await files.readCluster();
          assert.deepEqual({ ...fromApi, namespace: undefined }, { ...fromFiles, namespace: undefined });
          assert.equal(fromApi.namespace, namespace);
          const refusal = async (plane: FilesControlPlane | typeof kube): Promise<string> => {
            try {
              await resolveCredentials(plane, await plane.readCluster());
            } catch (err) {
              assert.ok(err instanceof ConfigError);
              return err.message;
            }
            return 'accepted';
          };
          assert.equal(await refusal(kube), 'secret db-app: password: key is missing');
          assert.equal(await refusal(kube), await refusal(files));
          await putSecret(server, namespace, 'db-app', { password: 'fine' });
          await writeFile(join(base, 'secrets', 'db-app', 'password'), 'fine');
          assert.equal(await refusal(kube), 'secret db-superuser: password: contains a line break or NUL');
          assert.equal(await refusal(kube), await refusal(files));
        });

        it('names the Cluster as cluster <namespace>/<name> in validation errors', async () => {
          await patchCluster(server, namespace, 'db', { spec: { instances: 0 } });
          await assert.rejects(kube.readCluster(), (err: unknown) => err instanceof ConfigError && err.message === `cluster ${namespace}/db: spec.instances: must be at least 1`);
          await patchCluster(server, namespace, 'db', { spec: { instances: 1 } });
        });
      });

      describe('API faults', function () {
        const instances: K8sInstance[] = [];
        const scratch: string[] = [];
        const scratchDir = async (): Promise<string> => {
          const dir = await makeTempDir('k8s-scratch');
          scratch.push(dir);
          return dir;
        };
        const make = async (prefix: string, editRole?: (role: Json) => void): Promise<K8sInstance> => {
          const instance = await K8sInstance.create(server, {
            namespacePrefix: prefix,
            clusterName: 'db',
            cluster: { smartShutdownTimeout: 1, stopDelay: 20 },
            appPassword: 'fault-pw',
            ...(editRole === undefined ? {} : { editRole }),
          });
          instances.push(instance);
          return instance;
        };

        after(async () => {
          for (const instance of instances) await instance.dispose();
          for (const dir of scratch) await removeTempDir(dir);
        });

        it('API unreachable at start: retries with backoff, one log line per attempt, no PostgreSQL; starts once the API answers; keeps serving when it is lost again', async function () {
          this.timeout(180_000);
          const instance = await make('down');
          const proxy = new TcpProxy(await freePort(), server.port);
          try {
            const pgim = await instance.start({ kind: 'kubeconfig', serverPort: proxy.port });
            await sleep(7000);
            const attempts = logged(pgim, 'waiting for the Kubernetes API');
            assert.ok(attempts.length >= 3 && attempts.length <= 5, `attempts in 7 s: ${attempts.length}`);
            assert.deepEqual(attempts.map((record) => record.attempt), attempts.map((_, i) => i + 1));
            assert.match(String(attempts[0]?.msg), /ECONNREFUSED/);
            assert.equal(existsSync(join(instance.paths.pgdata, 'PG_VERSION')), false, 'no initdb');
            assert.equal(existsSync(join(instance.paths.pgdata, 'postmaster.pid')), false, 'no postmaster');
            await assert.rejects(fetch(`${pgim.statusUrl}/healthz`), 'no status server yet');

            await proxy.open();
            await pgim.waitReady(90_000);
            await pgim.waitForLog(/the Kubernetes API answers/, 1000);

            // Lost while running: PostgreSQL keeps serving; a change made meanwhile is applied once it is back.
            const before = await pgStatus(pgim);
            await proxy.close();
            await patchCluster(server, instance.namespace, 'db', { spec: { postgresql: { parameters: { work_mem: '6MB' } } } });
            await sleep(3000);
            assert.notEqual(await show(instance.ports.pgPort, 'fault-pw', 'work_mem'), '6MB', 'pgim cannot see the API');
            assert.equal((await pgStatus(pgim)).postmasterPid, before.postmasterPid);
            await proxy.open();
            await eventually(async () => ((await show(instance.ports.pgPort, 'fault-pw', 'work_mem')) === '6MB' ? true : undefined), 60_000, 'work_mem = 6MB after the API came back');
            assert.equal((await pgStatus(pgim)).postmasterPid, before.postmasterPid, 'PostgreSQL kept running throughout');
            assert.ok(logged(pgim, 'lost the watch of Cluster db').length > 0);
          } finally {
            await proxy.close();
          }
        });

        it('a stop requested while waiting for the API: exit code 0 at once, nothing started', async function () {
          this.timeout(60_000);
          const instance = await make('stop');
          const pgim = await instance.start({ kind: 'kubeconfig', serverPort: await freePort() });
          await pgim.waitForLog(/waiting for the Kubernetes API \(attempt 1\)/, 15_000);
          const started = Date.now();
          pgim.signal('SIGTERM');
          const exit = await pgim.waitExit(10_000);
          assert.equal(exit.code, 0);
          assert.ok(Date.now() - started < 3000, 'no wait for the backoff to end');
          assert.equal(existsSync(join(instance.paths.pgdata, 'PG_VERSION')), false);
        });

        it('403 on its Cluster: the log names verb, resource and name, and retries back off (audit log: a few GETs in 10 s)', async function () {
          this.timeout(60_000);
          const instance = await make('forbidden');
          // Told to run a Cluster its Role does not cover.
          const pgim = await instance.start({ kind: 'kubeconfig' }, { clusterName: 'intruder' });
          await sleep(10_000);
          const user = serviceAccountUser(instance.namespace, 'db');
          const gets = byUser(await server.auditEvents(), user).filter(
            (event) => event.verb === 'get' && event.objectRef?.resource === 'clusters' && event.objectRef.name === 'intruder',
          );
          assert.ok(gets.length >= 2 && gets.length <= 6, `GETs in 10 s: ${gets.length}`);
          assert.ok(gets.every((event) => event.responseStatus?.code === 403));
          const attempts = logged(pgim, 'waiting for the Kubernetes API');
          assert.equal(attempts.length, gets.length, 'one log line per attempt');
          const first = attempts[0];
          assert.ok(first);
          assert.ok(String(first.msg).includes(`get clusters.postgresql.cnpg.io "intruder" in namespace "${instance.namespace}": 403 Forbidden`), String(first.msg));
          assert.equal(first.verb, 'get');
          assert.equal(first.resource, 'clusters');
          assert.equal(first.name, 'intruder');
          assert.equal(existsSync(join(instance.paths.pgdata, 'PG_VERSION')), false, 'no PostgreSQL on an unread Cluster');
        });

        it('a refused status write (403) is logged naming patch clusters/status, and retried until it lands', async function () {
          this.timeout(120_000);
          const withoutStatusPatch = (role: Json): void => {
            const rules = role.rules as { resources: string[]; verbs: string[] }[];
            for (const rule of rules) if (rule.resources.includes('clusters/status')) rule.verbs = rule.verbs.filter((verb) => verb !== 'patch');
            // patch is all the shipped Role grants on clusters/status: the rule goes (a Role rule needs a verb).
            role.rules = rules.filter((rule) => rule.verbs.length > 0);
          };
          const instance = await make('status403', withoutStatusPatch);
          const pgim = await instance.start();
          await pgim.waitReady(90_000);
          await patchCluster(server, instance.namespace, 'db', { spec: { postgresql: { parameters: { work_mem: '5MB' } } } });
          const refusal = await pgim.waitForLog(/the API server refused: patch clusters\/status\.postgresql\.cnpg\.io \\"db\\"/, 20_000);
          assert.match(refusal, /"verb":"patch","resource":"clusters\/status"/);
          assert.equal((await getCluster(server, instance.namespace, 'db')).status?.phase, undefined);
          // The operator fixes the Role: the pending write lands on a later retry, with no new trigger.
          const [role] = await deployManifests('role.yaml', 'db');
          const res = await server.request(namespacedPath(instance.namespace, 'roles', 'db', 'rbac.authorization.k8s.io/v1'), { method: 'PUT', body: role });
          assert.equal(res.status, 200, res.text);
          await eventually(async () => ((await getCluster(server, instance.namespace, 'db')).status?.phase === healthy ? true : undefined), 60_000, 'the retried status write');
        });

        it('409: an optimistic-lock status write that races another writer is retried on a fresh GET', async () => {
          const namespace = await createNamespace(server, 'conflict');
          await applyInstanceIdentity(server, namespace, 'db');
          await createCluster(server, namespace, clusterObject('db'));
          const token = await mintToken(server, namespace, 'db');
          const client = new KubeClient({ credentials: server.kubeConfigFor({ token }), server: server.url });
          let calls = 0;
          const patched = await patchStatusWithLock(client, namespace, 'db', async (cluster) => {
            calls += 1;
            if (calls === 1) {
              // Another writer gets in between this GET and the patch: the resourceVersion pgim carries is now stale.
              await patchClusterStatus(server, namespace, 'db', { phaseReason: 'written concurrently' });
            }
            assert.ok(cluster.metadata?.resourceVersion);
            return { currentPrimary: 'db-1' };
          });
          assert.equal(patched, true);
          assert.equal(calls, 2, 'one conflict, one retry');
          const status = (await getCluster(server, namespace, 'db')).status;
          assert.equal(status?.currentPrimary, 'db-1');
          assert.equal(status.phaseReason, 'written concurrently', 'the other writer is not overwritten');
          const conflicts = byUser(await server.auditEvents(), serviceAccountUser(namespace, 'db')).filter(
            (event) => event.verb === 'patch' && event.objectRef?.subresource === 'status' && event.responseStatus?.code === 409,
          );
          assert.equal(conflicts.length, 1, 'the API server answered 409 once');
        });

        it('claims currentPrimary while it is unset and targetPrimary is this pod or unset, or as the target primary', async () => {
          const namespace = await createNamespace(server, 'primary');
          await applyInstanceIdentity(server, namespace, 'db');
          await createCluster(server, namespace, clusterObject('db'));
          const kubeconfig = join(await scratchDir(), 'kubeconfig');
          await writeFile(kubeconfig, server.kubeconfigYaml({ token: await mintToken(server, namespace, 'db') }, namespace), { mode: 0o600 });
          const lines: string[] = [];
          const logger = createRootLogger({ pod: 'test', level: 'debug', destination: { write: (line: string) => void lines.push(line) } });
          const plane = (pod: string): Promise<Awaited<ReturnType<typeof openKubernetesControlPlane>>> =>
            openKubernetesControlPlane({ kubernetes: { kubeconfig, namespace, clusterName: 'db' }, podName: pod, logger });
          await patchClusterStatus(server, namespace, 'db', { targetPrimary: 'db-2' });
          await (await plane('db-1')).reportStatus({ currentPrimary: 'db-1' });
          assert.equal((await getCluster(server, namespace, 'db')).status?.currentPrimary, undefined, 'targetPrimary names another pod');
          await patchClusterStatus(server, namespace, 'db', { targetPrimary: 'db-1' });
          const timestamp = new Date().toISOString();
          await (await plane('db-1')).reportStatus({ currentPrimary: 'db-1', currentPrimaryTimestamp: timestamp });
          let status = (await getCluster(server, namespace, 'db')).status;
          assert.equal(status?.currentPrimary, 'db-1');
          assert.equal(status.currentPrimaryTimestamp, timestamp);
          await patchClusterStatus(server, namespace, 'db', { targetPrimary: null });
          await (await plane('db-3')).reportStatus({ currentPrimary: 'db-3' });
          status = (await getCluster(server, namespace, 'db')).status;
          assert.equal(status?.currentPrimary, 'db-1', 'an existing currentPrimary is never overwritten by another pod');
          assert.ok(lines.some((line) => line.includes('already names another current primary')));
          // A switchover (kubectl cnpg promote sets targetPrimary): the promoted target takes over, as CNPG's does.
          await patchClusterStatus(server, namespace, 'db', { targetPrimary: 'db-2' });
          await (await plane('db-2')).reportStatus({ currentPrimary: 'db-2' });
          assert.equal((await getCluster(server, namespace, 'db')).status?.currentPrimary, 'db-2', 'the target primary replaces the former one');
        });

        it('re-reads a token file on every request, so a rotated (projected) token is used at once', async () => {
          const namespace = await createNamespace(server, 'token');
          await applyInstanceIdentity(server, namespace, 'db');
          await createCluster(server, namespace, clusterObject('db'));
          const dir = await scratchDir();
          const tokenFile = join(dir, 'token');
          const kubeconfig = join(dir, 'kubeconfig');
          await writeFile(kubeconfig, server.kubeconfigYaml({ tokenFile }, namespace));
          await writeFile(tokenFile, 'not-a-valid-token');
          await handToPostgres(dir);
          const client = new KubeClient(await loadConnection({ kubeconfig, namespace: undefined, clusterName: 'db' }));
          const action = { verb: 'get', type: clusters, namespace, name: 'db' } as const;
          const path = namespacedPath(namespace, 'clusters', 'db', clustersGroup);
          await assert.rejects(client.request(action, 'GET', path), /401 Unauthorized/);
          await writeFile(tokenFile, await mintToken(server, namespace, 'db'));
          const cluster = (await client.request(action, 'GET', path)) as Json;
          assert.equal((cluster.metadata as Json).name, 'db');
        });
      });
    });
  }
});
