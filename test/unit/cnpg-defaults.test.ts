import { strict as assert } from 'node:assert';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { parseClusterManifest } from '../../src/cluster/parse.js';
import { FilesControlPlane } from '../../src/controlplane/files.js';
import { planSlotSync, type PhysicalSlot } from '../../src/replication/slot-sync.js';
import { failsafePeers, livenessWithIsolationCheck, type LivenessDeps } from '../../src/webserver/isolation-check.js';
import { errorOf, rejectionOf } from '../support/config-error.js';

const cluster = (spec: string) => parseClusterManifest(`apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata:\n  name: pg\nspec:\n  instances: 3\n${spec}`, 'cluster.yaml');
const slot = (name: string, restartLsn: string | null, extra: Partial<PhysicalSlot> = {}): PhysicalSlot => ({ name, active: false, restartLsn, holdsXmin: false, ...extra });
const silent = pino({ level: 'silent' });

describe("spec.replicationSlots: CNPG's slot replicator (synchronizeReplicas, updateInterval)", () => {
  it("applies CNPG's defaults (enabled, 30 s) and reads the Cluster's values", () => {
    const defaults = cluster('').slotSynchronization;
    assert.deepEqual([defaults.enabled, defaults.excludePatterns.length, defaults.updateIntervalSeconds], [true, 0, 30]);
    const set = cluster('  replicationSlots:\n    updateInterval: 5\n    synchronizeReplicas:\n      enabled: false\n      excludePatterns: ["^tmp_", "(?i)^KEEP"]').slotSynchronization;
    assert.deepEqual([set.enabled, set.updateIntervalSeconds], [false, 5]);
    assert.ok(set.excludePatterns[1]?.test('keep_me'), "RE2's (?i) is the i flag");
  });

  it('refuses an invalid pattern and an interval below 1 s, naming the field', () => {
    assert.match(errorOf(() => cluster('  replicationSlots:\n    synchronizeReplicas:\n      excludePatterns: ["ok", "(unclosed"]')).message, /spec\.replicationSlots\.synchronizeReplicas\.excludePatterns\[1\].*regular expression/);
    assert.match(errorOf(() => cluster('  replicationSlots:\n    updateInterval: 0')).message, /spec\.replicationSlots\.updateInterval.*at least 1/);
  });

  const config = (spec = '') => cluster(`  replicationSlots:\n    synchronizeReplicas:\n${spec || '      enabled: true'}`).slotSynchronization;

  it("creates the primary's user slots (reserving WAL when it has), advances them, leaves HA slots and excluded ones alone", () => {
    const primary = [slot('_cnpg_pg_2', '0/5000000'), slot('consumer', '0/4000000'), slot('unreserved', null), slot('tmp_x', '0/4000000')];
    const local = [slot('_cnpg_pg_3', '0/3000000')];
    assert.deepEqual(planSlotSync(primary, local, config('      excludePatterns: ["^tmp_"]')), [
      { kind: 'create', slot: 'consumer', reserve: true },
      { kind: 'advance', slot: 'consumer', to: '0/4000000' },
      { kind: 'create', slot: 'unreserved', reserve: false },
    ]);
  });

  it('advances a copy that is behind, never one already ahead; re-creates a copy made before the primary reserved WAL', () => {
    const primary = [slot('behind', '0/4000000'), slot('ahead', '0/4000000'), slot('late', '0/4000000')];
    const local = [slot('behind', '0/3FFFFFF'), slot('ahead', '0/5000000'), slot('late', null)];
    assert.deepEqual(planSlotSync(primary, local, config()), [
      { kind: 'drop', slot: 'late' },
      { kind: 'advance', slot: 'behind', to: '0/4000000' },
      { kind: 'create', slot: 'late', reserve: true },
      { kind: 'advance', slot: 'late', to: '0/4000000' },
    ]);
  });

  it('drops copies the primary no longer has and copies holding xmin (made again), never an active one', () => {
    const primary = [slot('kept', '0/4000000'), slot('xmin', '0/4000000')];
    const local = [slot('kept', '0/4000000'), slot('gone', '0/1000000'), slot('busy', '0/1000000', { active: true }), slot('xmin', '0/4000000', { holdsXmin: true })];
    assert.deepEqual(planSlotSync(primary, local, config()), [
      { kind: 'drop', slot: 'gone' },
      { kind: 'drop', slot: 'xmin' },
      { kind: 'create', slot: 'xmin', reserve: true },
      { kind: 'advance', slot: 'xmin', to: '0/4000000' },
    ]);
  });

  it('disabled: drops every inactive user copy (CNPG cleans up), keeps HA slots and excluded ones', () => {
    const local = [slot('_cnpg_pg_2', '0/1000000'), slot('copy', '0/1000000'), slot('keep_me', '0/1000000'), slot('busy', null, { active: true })];
    assert.deepEqual(planSlotSync([slot('copy', '0/2000000')], local, config('      enabled: false\n      excludePatterns: ["^keep"]')), [{ kind: 'drop', slot: 'copy' }]);
  });
});

describe("spec.probes.liveness.isolationCheck: CNPG's liveness pinger on /healthz", () => {
  it("reads CNPG's defaults (1000 ms) and treats an absent or disabled check as none", () => {
    assert.equal(cluster('').observability.probes.isolationCheck, undefined);
    assert.equal(cluster('  probes:\n    liveness:\n      isolationCheck:\n        enabled: false').observability.probes.isolationCheck, undefined);
    assert.deepEqual(cluster('  probes:\n    liveness:\n      isolationCheck:\n        enabled: true').observability.probes.isolationCheck, { requestTimeoutMs: 1000, connectionTimeoutMs: 1000 });
    assert.deepEqual(
      cluster('  probes:\n    liveness:\n      isolationCheck: {enabled: true, requestTimeout: 300, connectionTimeout: 200}').observability.probes.isolationCheck,
      { requestTimeoutMs: 300, connectionTimeoutMs: 200 },
    );
  });

  it('files mode refuses enabled: true, naming the field; false is accepted', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pgim-isolation-'));
    try {
      const manifest = (enabled: boolean) => `apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata:\n  name: pg\nspec:\n  instances: 2\n  probes:\n    liveness:\n      isolationCheck:\n        enabled: ${String(enabled)}\n`;
      await writeFile(join(dir, 'cluster.yaml'), manifest(true));
      const err = await rejectionOf(new FilesControlPlane(dir).readCluster());
      assert.match(err.message, /spec\.probes\.liveness\.isolationCheck\.enabled: is only available in Kubernetes mode/);
      await writeFile(join(dir, 'cluster.yaml'), manifest(false));
      assert.equal((await new FilesControlPlane(dir).readCluster()).instances, 2);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("pings every other instance: its .status address, else its reported pod IP, else its host, on the status port", () => {
    const topology = {
      self: 'pg-1',
      instances: ['pg-1', 'pg-2', 'pg-3'],
      addresses: new Map([['pg-1', { host: 'pg-rw', port: 5432 }], ['pg-2', { host: '10.0.0.2', port: 5432 }], ['pg-3', { host: 'pg-3', port: 5432 }]]),
      statusAddresses: new Map([['pg-3', { host: '127.0.0.1', port: 18003 }]]),
    };
    assert.deepEqual(failsafePeers(topology, new Map(), 8000, true).map((p) => p.url.href), ['https://10.0.0.2:8000/failsafe', 'https://127.0.0.1:18003/failsafe']);
    const reported = new Map([['pg-1', '10.1.0.1'], ['pg-2', 'fd00::2'], ['pg-4', '10.1.0.4']]);
    assert.deepEqual(failsafePeers({ ...topology, statusAddresses: new Map() }, reported, 8000, false).map((p) => p.url.href), ['http://[fd00::2]:8000/failsafe', 'http://10.1.0.4:8000/failsafe']);
  });

  describe('the decision, with real HTTP peers', () => {
    let up: Server;
    let silentPeer: Server;
    const peer = (server: Server, name: string) => ({ name, host: '127.0.0.1', url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/failsafe`) });
    const closedPort = async (): Promise<number> => {
      const s = createServer();
      await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
      const { port } = s.address() as AddressInfo;
      await new Promise((resolve) => s.close(resolve));
      return port;
    };
    before(async () => {
      up = createServer((_req, res) => res.end('OK'));
      // Accepts connections and never answers: the request timeout, not the connection timeout, ends it.
      silentPeer = createServer(() => undefined);
      for (const s of [up, silentPeer]) await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    });
    after(() => {
      silentPeer.closeAllConnections();
      for (const s of [up, silentPeer]) s.close();
    });

    const deps = (over: Partial<LivenessDeps>): LivenessDeps => ({
      config: () => ({ requestTimeoutMs: 300, connectionTimeoutMs: 300 }),
      instances: () => 3,
      isPrimary: () => Promise.resolve(true),
      apiServer: () => Promise.resolve(),
      peers: () => [peer(up, 'pg-2')],
      serverCa: () => Promise.reject(new Error('no https peer here')),
      logger: silent,
      ...over,
    });
    const apiDown = () => Promise.reject(new Error('connect ECONNREFUSED'));

    it('healthy with the API server and peers; with the API server down but every peer answering; with the API server up and a peer down', async () => {
      assert.deepEqual(await livenessWithIsolationCheck(deps({})), { ok: true, message: 'OK' });
      assert.equal((await livenessWithIsolationCheck(deps({ apiServer: apiDown }))).ok, true);
      const gone = await closedPort();
      const down = { name: 'pg-3', host: '127.0.0.1', url: new URL(`http://127.0.0.1:${gone}/failsafe`) };
      assert.equal((await livenessWithIsolationCheck(deps({ peers: () => [peer(up, 'pg-2'), down] }))).ok, true);
    });

    it('fails when the API server and one peer are unreachable, worded as CNPG (refused, or no answer in time)', async () => {
      const gone = await closedPort();
      const refused = await livenessWithIsolationCheck(deps({ apiServer: apiDown, peers: () => [peer(up, 'pg-2'), { name: 'pg-3', host: '127.0.0.1', url: new URL(`http://127.0.0.1:${gone}/failsafe`) }] }));
      assert.equal(refused.ok, false);
      assert.match(refused.message, /^liveness check failed: instance connectivity error for instance \[pg-3\] with ip \[127\.0\.0\.1\] \(requestTimeout:300 connectionTimeout:300\): .*ECONNREFUSED/);
      const hung = await livenessWithIsolationCheck(deps({ apiServer: apiDown, peers: () => [peer(silentPeer, 'pg-2')] }));
      assert.match(hung.message, /instance \[pg-2\].*no answer within 300 ms/);
    });

    it('never fails a replica, a single instance, a role it cannot read, or a check that is off', async () => {
      const isolated = { apiServer: apiDown, peers: () => [{ name: 'pg-2', host: '127.0.0.1', url: new URL('http://127.0.0.1:1/failsafe') }] };
      assert.equal((await livenessWithIsolationCheck(deps({ ...isolated, isPrimary: () => Promise.resolve(false) }))).ok, true);
      assert.equal((await livenessWithIsolationCheck(deps({ ...isolated, instances: () => 1 }))).ok, true);
      assert.equal((await livenessWithIsolationCheck(deps({ ...isolated, isPrimary: () => Promise.reject(new Error('no PGDATA')) }))).ok, true);
      assert.equal((await livenessWithIsolationCheck(deps({ ...isolated, config: () => undefined }))).ok, true);
      assert.equal((await livenessWithIsolationCheck(deps({ ...isolated, apiServer: undefined }))).ok, true, 'files mode has no API server to ask');
    });
  });
});
