import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { BackupObjectReconciler, type BackupObjectsDeps } from '../../src/backup/backup-objects.js';
import { backupRequestSocket, serveBackupRequests } from '../../src/backup/backup-request.js';
import type { BackupObject } from '../../src/controlplane/index.js';
import { makeTempDir, removeTempDir } from '../../test-kit/env.js';
import { pgimEntry } from '../../test-kit/pgim.js';

const run = promisify(execFile);

/** `pgim backup <name>`: exit code and stderr. */
async function backupCommand(runtimeDir: string, name: string): Promise<{ code: number; stderr: string }> {
  try {
    const { stderr } = await run(process.execPath, [pgimEntry, 'backup', name], { env: { ...process.env, PGIM_RUNTIME_DIR: runtimeDir } });
    return { code: 0, stderr };
  } catch (err) {
    const e = err as { code?: number; stderr?: string };
    return { code: e.code ?? -1, stderr: e.stderr ?? '' };
  }
}

/** CloudNativePG's operator runs `/controller/manager backup <name>` (pods/exec) in the pod it chose for a Backup. */
describe("CNPG's `backup <name>` (the operator's exec): the daemon takes that Backup object now", function () {
  this.timeout(60_000);
  let dir = '';
  before(async () => {
    dir = await makeTempDir('backup-request');
  });
  after(async () => {
    await removeTempDir(dir);
  });

  it('asks the daemon over its 0600 socket: exit 0 once accepted, 1 with the reason otherwise', async () => {
    const asked: string[] = [];
    const server = await serveBackupRequests(dir, (name) => {
      asked.push(name);
      return Promise.resolve(name === 'first' ? undefined : `no Backup ${name} of this Cluster`);
    });
    try {
      assert.equal((await stat(backupRequestSocket(dir))).mode & 0o777, 0o600);
      assert.deepEqual(await backupCommand(dir, 'first'), { code: 0, stderr: '' });
      const refused = await backupCommand(dir, 'other');
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /pgim backup other: no Backup other of this Cluster/);
      // Not an object name: refused before the daemon is asked.
      assert.match((await backupCommand(dir, 'Not_A_Name')).stderr, /a Backup object name is expected/);
      assert.deepEqual(asked, ['first', 'other']);
    } finally {
      server.close();
    }
    const noDaemon = await backupCommand(dir, 'first');
    assert.equal(noDaemon.code, 1);
    assert.match(noDaemon.stderr, /cannot reach the instance manager/);
  });

  it('takes only a Backup of this Cluster (barmanObjectStore) elected to this pod, and says why not', async () => {
    const backups: BackupObject[] = [
      { name: 'mine', creationTimestamp: '2026-12-05T08:00:00Z', spec: { cluster: { name: 'pg' } }, status: { phase: 'completed', instanceID: { podName: 'pg-2' } } },
      { name: 'theirs', creationTimestamp: '2026-12-05T08:00:00Z', spec: { cluster: { name: 'pg' } }, status: { phase: 'completed', instanceID: { podName: 'pg-3' } } },
      { name: 'snapshot', creationTimestamp: '2026-12-05T08:00:00Z', spec: { cluster: { name: 'pg' }, method: 'volumeSnapshot' }, status: {} },
      { name: 'other-cluster', creationTimestamp: '2026-12-05T08:00:00Z', spec: { cluster: { name: 'db' } }, status: {} },
    ];
    let store: object | undefined = {};
    const deps = {
      controlPlane: { listBackups: () => Promise.resolve(backups) },
      service: {
        get store() {
          return store;
        },
      },
      desired: () => ({ cluster: { name: 'pg', backup: { target: 'prefer-standby' } }, self: 'pg-2', primary: 'pg-1', instances: ['pg-1', 'pg-2', 'pg-3'] }),
      logger: pino({ level: 'silent' }),
    } as unknown as BackupObjectsDeps;
    const objects = new BackupObjectReconciler(deps);
    assert.equal(await objects.takeNow('mine'), undefined);
    assert.equal(await objects.takeNow('theirs'), 'Backup theirs is for pg-3, not pg-2');
    assert.equal(await objects.takeNow('snapshot'), 'no Backup snapshot of this Cluster with method barmanObjectStore');
    assert.equal(await objects.takeNow('other-cluster'), 'no Backup other-cluster of this Cluster with method barmanObjectStore');
    store = undefined;
    assert.match((await objects.takeNow('mine')) ?? '', /Barman backup not configured/);
  });
});
