import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { eventually } from '../../test-kit/env.js';
import { query, type PgimProcess } from '../../test-kit/pgim.js';
import { archivedWalNames, backupSecretData, backupSecretName, backupSpec, requireBackupParts, S3Server } from '../../test-kit/s3.js';
import type { TestApiServer } from '../k8s/apiserver.js';
import { getCluster, installCrd, namespacedPath, type Json } from '../k8s/fixtures.js';
import { apiServerFor, crdVariants, releaseAllApiServers, requireCrdFile, requireK8sBinaries } from '../k8s/harness.js';
import { K8sInstance } from '../k8s/instance.js';
import { cnpgDataDir } from '../k8s/paths.js';

const group = 'postgresql.cnpg.io/v1';

/**
 * Kubernetes mode's Backup objects with CloudNativePG's real Cluster, Backup and ScheduledBackup CRDs on a real
 * kube-apiserver, the shipped least-privilege Role (plus the backup Secret, as CNPG's Role names it), and a real S3
 * server: status patched through every phase, the Cluster's backup status, a new Cluster restored from a Backup
 * object (`bootstrap.recovery.backup.name`), retention of Backup objects, and another Cluster's Backups left alone.
 */
describe('Kubernetes mode: Backup objects (real kube-apiserver, CNPG CRDs, Barman Cloud, versitygw)', function () {
  this.timeout(900_000);
  /** What before() set up, undone in reverse by after(). */
  const cleanup: (() => Promise<unknown>)[] = [];
  const clusterName = 'db';
  let server: TestApiServer;
  let s3: S3Server;
  let instance: K8sInstance;
  let pgim: PgimProcess;
  const cnpg = crdVariants.find((v) => v.key === 'cnpg');
  const appPassword = 'app-pw-backup';
  const superuserPassword = 'su-pw-backup';

  const backupsPath = (name?: string): string => namespacedPath(instance.namespace, 'backups', name, group);
  const createBackup = async (name: string, cluster: string, extra: Json = {}): Promise<void> => {
    const res = await server.request(backupsPath(), {
      method: 'POST',
      body: { apiVersion: group, kind: 'Backup', metadata: { name }, spec: { cluster: { name: cluster }, method: 'barmanObjectStore', ...extra } },
    });
    assert.ok(res.status === 201, `create Backup ${name}: ${res.status} ${res.text}`);
  };
  const getBackup = async (name: string): Promise<{ status: number; body: Json & { status?: Json } }> => {
    const res = await server.request(backupsPath(name));
    return { status: res.status, body: res.body as Json & { status?: Json } };
  };
  const patchBackupStatus = async (name: string, status: Json): Promise<void> => {
    const res = await server.request(`${backupsPath(name)}/status`, { method: 'PATCH', body: { status }, contentType: 'application/merge-patch+json' });
    assert.equal(res.status, 200, res.text);
  };

  before(async function () {
    this.timeout(40 * 60_000);
    requireBackupParts(this);
    const binDir = await requireK8sBinaries(this);
    if (cnpg === undefined) throw new Error('no CNPG CRD variant');
    requireCrdFile(this, cnpg);
    server = await apiServerFor(binDir, cnpg);
    for (const crd of ['postgresql.cnpg.io_backups.yaml', 'postgresql.cnpg.io_scheduledbackups.yaml']) await installCrd(server, join(cnpgDataDir, 'crds', crd));
    await eventually(async () => ((await server.request('/apis/postgresql.cnpg.io/v1/backups')).status === 200 ? true : undefined), 30_000, 'backups served');
    s3 = await S3Server.start();
    cleanup.push(() => s3.stop());
    instance = await K8sInstance.create(server, {
      namespacePrefix: 'backup',
      clusterName,
      appPassword,
      superuserPassword,
      cluster: { enableSuperuserAccess: true, spec: backupSpec(s3, 'k8s', { retentionPolicy: '30d', target: 'primary' }) },
      // CNPG's Role names the backup credentials Secret among the Secrets the instance may read.
      editRole: (role) => {
        const rules = role.rules as { resources: string[]; resourceNames?: string[] }[];
        rules.find((r) => r.resources.includes('secrets'))?.resourceNames?.push(backupSecretName);
      },
    });
    cleanup.push(() => instance.dispose());
    const data = Object.fromEntries(Object.entries(backupSecretData(s3)).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
    const created = await server.request(namespacedPath(instance.namespace, 'secrets'), { method: 'POST', body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: backupSecretName }, type: 'Opaque', data } });
    assert.equal(created.status, 201, created.text);
    pgim = await instance.start();
    await pgim.waitReady(180_000);
    await query(pgim.ports.pgPort, 'app', appPassword, 'CREATE TABLE t (x text)');
    await query(pgim.ports.pgPort, 'app', appPassword, "INSERT INTO t VALUES ('before-backup')");
  });

  after(async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
    await releaseAllApiServers();
  });

  it('takes the Backup of its Cluster, patching backups/status through every phase, and updates the Cluster status', async () => {
    await createBackup('other-cluster-backup', 'someone-else');
    await createBackup('nightly', clusterName);
    const seen = new Set<string>();
    const done = await eventually(async () => {
      const { body } = await getBackup('nightly');
      const phase = body.status?.phase;
      if (typeof phase === 'string') seen.add(phase);
      return phase === 'completed' || phase === 'failed' ? body.status : undefined;
    }, 300_000, 'Backup nightly completed');
    assert.equal(done.phase, 'completed', JSON.stringify(done));
    assert.ok(seen.has('running') || seen.has('started'), `phases seen: ${[...seen].join(', ')}`);
    assert.match(String(done.backupId), /^\d{8}T\d{6}$/);
    for (const key of ['beginWal', 'endWal']) assert.match(String(done[key]), /^[0-9A-F]{24}$/, key);
    for (const key of ['beginLSN', 'endLSN']) assert.match(String(done[key]), /^[0-9A-F]+\/[0-9A-F]+$/, key);
    for (const key of ['startedAt', 'stoppedAt']) assert.ok(!Number.isNaN(Date.parse(String(done[key]))), key);
    assert.equal((done.instanceID as Json | undefined)?.podName, `${clusterName}-1`);
    assert.equal(done.destinationPath, s3.destination('k8s'));
    assert.equal(done.serverName, clusterName);

    const cluster = await eventually(async () => {
      const c = await getCluster(server, instance.namespace, clusterName);
      return typeof c.status?.lastSuccessfulBackup === 'string' ? c.status : undefined;
    }, 60_000, 'Cluster status.lastSuccessfulBackup');
    assert.ok(typeof cluster.firstRecoverabilityPoint === 'string');
    const conditions = (cluster.conditions ?? []) as { type: string; status: string; reason: string }[];
    assert.equal(conditions.find((c) => c.type === 'LastBackupSucceeded')?.status, 'True');
    assert.equal(conditions.find((c) => c.type === 'ContinuousArchiving')?.reason, 'ContinuousArchivingSuccess');

    const other = await getBackup('other-cluster-backup');
    assert.equal(other.status, 200);
    assert.equal(other.body.status?.phase, undefined, "another Cluster's Backup is not touched");
  });

  it('restores a new Cluster from the Backup object it names (bootstrap.recovery.backup.name): its data, promoted, its own password', async () => {
    // Rows after the backup "nightly": replayed from the archive up to its end (no target).
    await query(pgim.ports.pgPort, 'app', appPassword, "INSERT INTO t VALUES ('after-backup')");
    const restored = await K8sInstance.create(server, {
      namespacePrefix: 'backup',
      namespace: instance.namespace,
      clusterName: 'restored',
      appPassword: 'app-pw-restored',
      cluster: { spec: { bootstrap: { recovery: { backup: { name: 'nightly' } } } } },
      editRole: (role) => {
        const rules = role.rules as { resources: string[]; resourceNames?: string[] }[];
        rules.find((r) => r.resources.includes('secrets'))?.resourceNames?.push(backupSecretName);
      },
    });
    cleanup.push(() => restored.dispose());
    // The row after the backup is in the archive once its segment is.
    const lastWal = String((await query(pgim.ports.pgPort, 'postgres', superuserPassword, 'SELECT pg_walfile_name(pg_current_wal_lsn()) AS w'))[0]?.w);
    await query(pgim.ports.pgPort, 'postgres', superuserPassword, 'SELECT pg_switch_wal()');
    await eventually(async () => ((await archivedWalNames(s3, 'k8s', clusterName)).includes(lastWal) ? true : undefined), 180_000, `${lastWal} archived`);
    const running = await restored.start();
    await running.waitReady(600_000);
    const rows = (await query(running.ports.pgPort, 'app', 'app-pw-restored', 'SELECT x FROM t ORDER BY x')).map((r) => String(r.x));
    assert.deepEqual(rows, ['after-backup', 'before-backup']);
    assert.equal((await query(running.ports.pgPort, 'app', 'app-pw-restored', 'SELECT pg_is_in_recovery() AS r'))[0]?.r, false);
    await query(running.ports.pgPort, 'app', 'app-pw-restored', "INSERT INTO t VALUES ('written-after-restore')");
    const status = await eventually(async () => {
      const c = await getCluster(server, instance.namespace, 'restored');
      return c.status?.currentPrimary === 'restored-1' ? c.status : undefined;
    }, 120_000, 'the restored Cluster reports its primary');
    assert.equal(status.currentPrimary, 'restored-1');
  });

  it('deletes the Backup objects whose backup is gone from the store, never another Cluster\'s', async () => {
    const location = { destinationPath: s3.destination('k8s'), endpointURL: s3.endpointURL, serverName: clusterName };
    await createBackup('gone', clusterName);
    await createBackup('foreign-gone', 'someone-else');
    // As if they had completed long ago and retention had removed them from the store; the instance must not
    // take them (completed), only clean up the one of its own Cluster.
    await patchBackupStatus('gone', { phase: 'completed', backupId: '20200101T000000', ...location });
    await patchBackupStatus('foreign-gone', { phase: 'completed', backupId: '20200101T000000', ...location, serverName: 'someone-else' });
    await createBackup('second', clusterName);
    await eventually(async () => ((await getBackup('second')).body.status?.phase === 'completed' ? true : undefined), 300_000, 'Backup second completed');
    await eventually(async () => ((await getBackup('gone')).status === 404 ? true : undefined), 60_000, 'Backup gone deleted');
    assert.equal((await getBackup('foreign-gone')).status, 200);
    assert.equal((await getBackup('nightly')).status, 200, 'a Backup still in the catalog stays');
    assert.equal((await getBackup('other-cluster-backup')).status, 200);
    const events = await server.auditEvents();
    const deletes = events.filter((e) => e.verb === 'delete' && e.objectRef?.resource === 'backups');
    assert.deepEqual([...new Set(deletes.map((e) => e.objectRef?.name))], ['gone']);
  });
});
