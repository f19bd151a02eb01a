import { strict as assert } from 'node:assert';
import { stringify } from 'yaml';
import { isReplicaCluster } from '../../src/cluster/external-clusters.js';
import { parseClusterManifest } from '../../src/cluster/parse.js';
import type { ControlPlane, ObjectData } from '../../src/controlplane/index.js';
import { ConfigError } from '../../src/errors/index.js';
import { loadExternalConnection } from '../../src/replication/external.js';
import { renderOverrideConf } from '../../src/render/override-conf.js';
import { decideRole } from '../../src/role/decision.js';

const origin = {
  name: 'origin',
  connectionParameters: { host: 'origin-rw', user: 'streaming_replica', dbname: 'postgres', sslmode: 'verify-full' },
  sslKey: { name: 'origin-replication', key: 'tls.key' },
  sslCert: { name: 'origin-replication', key: 'tls.crt' },
  sslRootCert: { name: 'origin-ca', key: 'ca.crt' },
};

const manifest = (spec: Record<string, unknown>): string =>
  stringify({ apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', metadata: { name: 'pg' }, spec: { instances: 2, ...spec } });

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err;
  }
  assert.fail('expected a ConfigError');
}

/** A control plane that only has Secrets. */
function secrets(data: Record<string, Record<string, string>>): ControlPlane {
  return {
    readSecret: (name: string): Promise<ObjectData | undefined> => {
      const secret = data[name];
      return Promise.resolve(secret === undefined ? undefined : new Map(Object.entries(secret).map(([k, v]) => [k, Buffer.from(v)])));
    },
  } as unknown as ControlPlane;
}

describe('externalClusters, bootstrap.pg_basebackup and spec.replica', () => {
  it("CNPG's IsReplica: enabled wins; otherwise a replica unless primary names this cluster (self, or its name)", () => {
    assert.equal(isReplicaCluster(undefined, 'pg'), false);
    assert.equal(isReplicaCluster({ enabled: true, source: 'o' }, 'pg'), true);
    assert.equal(isReplicaCluster({ enabled: false, source: 'o', primary: 'other' }, 'pg'), false);
    assert.equal(isReplicaCluster({ source: 'o', primary: 'pg' }, 'pg'), false);
    assert.equal(isReplicaCluster({ source: 'o', primary: 'east' }, 'pg'), true);
    assert.equal(isReplicaCluster({ source: 'o', primary: 'east', self: 'east' }, 'pg'), false);
  });

  it('resolves the clone source and the replica source; the app database, owner and secret come from pg_basebackup', () => {
    const c = parseClusterManifest(manifest({ externalClusters: [origin], bootstrap: { pg_basebackup: { source: 'origin', database: 'shop' } }, replica: { enabled: true, source: 'origin' } }), 'f.yaml');
    assert.equal(c.external.clone?.name, 'origin');
    assert.equal(c.external.replica?.source.field, 'spec.externalClusters[0]');
    assert.deepEqual({ ...c.bootstrap, initdb: undefined }, { database: 'shop', owner: 'shop', secretName: 'pg-app', initdb: undefined, recovery: undefined });
    const promoted = parseClusterManifest(manifest({ externalClusters: [origin], replica: { enabled: false, source: 'origin' } }), 'f.yaml');
    assert.equal(promoted.external.replica, undefined);
  });

  it('accepts a source with only a barmanObjectStore when bootstrap.recovery restores from it: the replica cluster follows the archive', () => {
    const store = { name: 'store', barmanObjectStore: { destinationPath: 's3://b/', s3Credentials: { accessKeyId: { name: 'c', key: 'id' }, secretAccessKey: { name: 'c', key: 'k' } } } };
    const c = parseClusterManifest(manifest({ externalClusters: [store], bootstrap: { recovery: { source: 'store' } }, replica: { enabled: true, source: 'store' } }), 'f.yaml');
    assert.equal(c.external.replica?.archiveOnly, true);
    assert.equal(c.external.replica.source.name, 'store');
    assert.equal(c.bootstrap.recovery?.origin.kind, 'externalCluster');
    const streaming = parseClusterManifest(manifest({ externalClusters: [origin], replica: { enabled: true, source: 'origin' } }), 'f.yaml');
    assert.equal(streaming.external.replica?.archiveOnly, false);
  });

  it('refuses, naming the field: an unknown source, a barman-only source without bootstrap.recovery from it, a source with neither, secrets in connectionParameters, a half certificate, a token', () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ externalClusters: [origin], bootstrap: { pg_basebackup: { source: 'nope' } } }, 'spec.bootstrap.pg_basebackup.source', /not an entry of spec\.externalClusters/],
      [{ externalClusters: [origin], replica: { enabled: false, source: 'nope' } }, 'spec.replica.source', /not an entry/],
      [{ externalClusters: [{ name: 'store', barmanObjectStore: { destinationPath: 's3://b/' } }], replica: { enabled: true, source: 'store' } }, 'spec.bootstrap.recovery.source', /must name "store": .* has only a barmanObjectStore, so the replica cluster bootstraps by restoring from it/],
      [{ externalClusters: [{ name: 'store' }], replica: { enabled: true, source: 'store' } }, 'spec.replica.source', /has no connectionParameters/],
      [{ externalClusters: [{ ...origin, connectionParameters: { host: 'h', password: 'x' } }] }, 'spec.externalClusters[0].connectionParameters.password', /never goes into a manifest/],
      [{ externalClusters: [{ ...origin, sslCert: undefined }] }, 'spec.externalClusters[0].sslCert', /required with sslKey/],
      [{ externalClusters: [origin, origin] }, 'spec.externalClusters[1].name', /listed twice/],
      [{ externalClusters: [origin], replica: { enabled: true, source: 'origin', promotionToken: 'abc' } }, 'spec.replica.promotionToken', /not implemented/],
      [{ externalClusters: [origin], replica: { enabled: true, source: 'origin', minApplyDelay: '1h' } }, 'spec.replica.minApplyDelay', /not implemented/],
    ];
    for (const [spec, field, pattern] of cases) {
      const err = errorOf(() => parseClusterManifest(manifest(spec), 'f.yaml'));
      assert.equal(err.field, field, err.message);
      assert.match(err.message, pattern);
    }
  });

  it('builds a conninfo that names files only: the key, certificates and passfile go to the runtime dir', async () => {
    const c = parseClusterManifest(manifest({ externalClusters: [{ ...origin, password: { name: 'origin-pw', key: 'password' } }], bootstrap: { pg_basebackup: { source: 'origin' } } }), 'f.yaml');
    const entry = c.external.clone;
    assert.ok(entry);
    const plane = secrets({ 'origin-replication': { 'tls.key': 'KEY', 'tls.crt': 'CERT' }, 'origin-ca': { 'ca.crt': 'CA' }, 'origin-pw': { password: "s3:cr\\et'\n" } });
    const connection = await loadExternalConnection(plane, entry, '/run/pgim');
    const dir = '/run/pgim/external/0-origin';
    assert.equal(connection.conninfo, `dbname=postgres host=origin-rw passfile=${dir}/pgpass sslcert=${dir}/client.crt sslkey=${dir}/client.key sslmode=verify-full sslrootcert=${dir}/root.crt user=streaming_replica`);
    assert.equal(connection.files.get(`${dir}/pgpass`)?.toString(), '*:*:*:*:s3\\:cr\\\\et\'\n');
    assert.equal(connection.files.get(`${dir}/client.key`)?.toString(), 'KEY');
    const missing = await loadExternalConnection(secrets({}), entry, '/run/pgim').catch((err: unknown) => err);
    assert.ok(missing instanceof ConfigError);
    assert.match(missing.message, /^secret origin-replication: not found \(named by spec\.externalClusters\[0\]\.sslKey\)$/);
  });

  it("the designated primary streams without a slot; it stays in recovery (never promotes) and refuses a demotion", () => {
    assert.equal(renderOverrideConf({ primaryConninfo: 'host=origin-rw', slotName: undefined }), "primary_conninfo = 'host=origin-rw'\nrecovery_target_timeline = 'latest'\n");
    const base = { isTarget: true, fenced: false, lease: 'not asked', forked: false, designatedPrimary: true } as const;
    assert.equal(decideRole({ ...base, inRecovery: true }).action, 'keep lease');
    assert.equal(decideRole({ ...base, inRecovery: false }).action, 'refuse demotion');
    assert.equal(decideRole({ ...base, inRecovery: true, designatedPrimary: false }).action, 'acquire lease', 'enabled: false promotes');
  });
});
