import { strict as assert } from 'node:assert';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { parseClusterManifest } from '../../src/cluster/parse.js';
import {
  classifyField,
  clusterFieldSupport,
  ignoreUnsupportedFieldsAnnotation,
  isSplit,
  refuseUnsupportedFields,
  unsupportedFields,
} from '../../src/cluster/field-support.js';
import { ConfigError } from '../../src/errors/index.js';
import { fieldSupportMarkdown, readmePath, tableEnd, tableStart } from '../../scripts/field-table.js';

/** CNPG's Cluster CRD (../shared/data beside the repository), never copied into it. */
const crdPath = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'shared', 'data', 'cloudnative-pg', 'crds', 'postgresql.cnpg.io_clusters.yaml');

interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  default?: unknown;
}

function clusterSpecSchema(): Schema {
  if (!existsSync(crdPath)) throw new Error(`CNPG's Cluster CRD is missing at ${crdPath}: the shared/ data folder must sit beside the repository`);
  const crd = parse(readFileSync(crdPath, 'utf8')) as { spec: { versions: { schema: { openAPIV3Schema: Schema } }[] } };
  const spec = crd.spec.versions[0]?.schema.openAPIV3Schema.properties?.spec;
  assert.ok(spec, 'the CRD has spec');
  return spec;
}

/** Every field path of the schema, list items folded into their list (`spec.tablespaces.name`). */
function fieldPaths(schema: Schema, prefix: string): string[] {
  const properties = schema.type === 'array' ? schema.items?.properties : schema.properties;
  return Object.entries(properties ?? {}).flatMap(([name, child]) => [`${prefix}.${name}`, ...fieldPaths(child, `${prefix}.${name}`)]);
}

/** What the API server's structural defaulting does to an object: absent fields with a default get it, recursively. */
function applyDefaults(schema: Schema, value: Record<string, unknown>): Record<string, unknown> {
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    if (value[name] === undefined && child.default !== undefined) value[name] = structuredClone(child.default);
    const present = value[name];
    if (child.type === 'object' && typeof present === 'object' && present !== null && !Array.isArray(present)) applyDefaults(child, present as Record<string, unknown>);
  }
  return value;
}

function refusal(spec: unknown, annotations: Record<string, string> = {}): ConfigError {
  try {
    refuseUnsupportedFields(spec, annotations, 'cluster.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err;
  }
  assert.fail('expected a refusal');
}

const ignoring = (...paths: string[]): Record<string, string> => ({ [ignoreUnsupportedFieldsAnnotation]: JSON.stringify(paths) });

describe('Cluster field support (against CNPG v1.30 Cluster CRD)', () => {
  const schema = clusterSpecSchema();
  const crdPaths = fieldPaths(schema, 'spec');

  it('classifies every field path of the CRD, a split field by each of its sub-fields', () => {
    assert.ok(crdPaths.length > 800, `the CRD has ${crdPaths.length} spec field paths`);
    const unclassified = crdPaths.filter((path) => {
      const entry = classifyField(path);
      return entry === undefined || (entry.path !== path && isSplit(entry.path));
    });
    assert.deepEqual(unclassified, []);
  });

  it('lists only fields of the CRD, each once', () => {
    const known = new Set(crdPaths);
    assert.deepEqual(clusterFieldSupport.map((e) => e.path).filter((path) => !known.has(path)), []);
    const paths = clusterFieldSupport.map((e) => e.path);
    assert.equal(new Set(paths).size, paths.length, 'no path twice');
  });

  it("the README's table is the table in the code", () => {
    const readme = readFileSync(readmePath, 'utf8');
    const section = readme.slice(readme.indexOf(tableStart), readme.indexOf(tableEnd) + tableEnd.length);
    assert.equal(section, fieldSupportMarkdown(), 'run: npm run build && node dist/scripts/field-table.js');
  });

  it('accepts every default the API server puts into a Cluster (CNPG CRD defaulting)', () => {
    const spec = applyDefaults(schema, { instances: 3, replicationSlots: {}, primaryLease: {}, probes: { liveness: { isolationCheck: { enabled: false } } } });
    assert.deepEqual(spec.replicationSlots, { highAvailability: { enabled: true, slotPrefix: '_cnpg_' }, updateInterval: 30 });
    assert.deepEqual(unsupportedFields(spec), []);
  });

  it('accepts a Cluster full of operator-only fields', () => {
    const spec = {
      instances: 3,
      imageName: 'ghcr.io/cloudnative-pg/postgresql:15',
      storage: { size: '1Gi', storageClass: 'standard' },
      affinity: { enablePodAntiAffinity: true, topologyKey: 'kubernetes.io/hostname' },
      resources: { requests: { memory: '1Gi' } },
      monitoring: { enablePodMonitor: true, customQueriesConfigMap: [{ name: 'q', key: 'queries' }] },
      probes: { readiness: { type: 'streaming', maximumLag: '16Mi', periodSeconds: 5 } },
      managed: { services: { disabledDefaultServices: ['ro', 'r'] } },
      certificates: { serverAltDNSNames: ['db.example.com'] },
      bootstrap: { initdb: { database: 'app', owner: 'app', encoding: 'UTF8', localeCollate: 'C', dataChecksums: false } },
      externalClusters: [],
      tablespaces: [],
    };
    assert.deepEqual(unsupportedFields(spec), []);
  });

  it('never accepts a bootstrap from a volume snapshot, not even with the annotation', () => {
    for (const [field, value, path] of [['recovery', { volumeSnapshots: { storage: { name: 'snap', kind: 'VolumeSnapshot' } } }, 'spec.bootstrap.recovery.volumeSnapshots']] as const) {
      const err = refusal({ bootstrap: { [field]: value } }, ignoring('spec.backup.volumeSnapshot'));
      assert.equal(err.field, path);
      assert.match(err.message, /no annotation accepts ignoring it/);
      const listed = refusal({ bootstrap: { [field]: value } }, ignoring(path));
      assert.equal(listed.field, `metadata.annotations.${ignoreUnsupportedFieldsAnnotation}`);
      assert.match(listed.message, /which pgim never ignores/);
    }
    assert.equal(refusal({ bootstrap: { initdb: { import: { type: 'microservice' } } } }).field, 'spec.bootstrap.initdb.import');
  });

  it('refuses what pgim does not implement, naming each field, and accepts it when the annotation lists it', () => {
    const spec = {
      backup: { volumeSnapshot: { className: 'snap' } },
      externalClusters: [{ name: 'origin', plugin: { name: 'barman-cloud.cloudnative-pg.io' } }],
      plugins: [{ name: 'barman-cloud.cloudnative-pg.io' }],
      postgresql: { synchronous: { method: 'any', number: 1, failoverQuorum: true }, parameters: { work_mem: '8MB' } },
    };
    const err = refusal(spec);
    assert.equal(err.field, 'spec.backup.volumeSnapshot');
    assert.match(err.message, /^cluster\.yaml: spec\.backup\.volumeSnapshot: is not implemented by pgim: .*list it in the annotation pgim\.io\/ignoreUnsupportedFields; also refused: spec\.externalClusters, spec\.plugins, spec\.postgresql\.synchronous\.failoverQuorum$/);
    const all = ignoring('spec.backup.volumeSnapshot', 'spec.externalClusters', 'spec.plugins', 'spec.postgresql.synchronous.failoverQuorum');
    assert.deepEqual(refuseUnsupportedFields(spec, all, 'cluster.yaml'), [
      'spec.backup.volumeSnapshot', 'spec.externalClusters', 'spec.plugins', 'spec.postgresql.synchronous.failoverQuorum',
    ]);
    assert.equal(refusal(spec, ignoring('spec.backup.volumeSnapshot')).field, 'spec.externalClusters', 'only the fields listed are ignored');
  });

  it('a value pgim does not implement is refused; the accepted values and null are not', () => {
    assert.equal(refusal({ primaryUpdateMethod: 'switchover' }).field, 'spec.primaryUpdateMethod');
    assert.equal(refusal({ replicationSlots: { highAvailability: { enabled: false } } }).field, 'spec.replicationSlots.highAvailability.enabled');
    assert.equal(refusal({ postgresql: { enableAlterSystem: true } }).field, 'spec.postgresql.enableAlterSystem');
    assert.equal(refusal({ postgresql: { syncReplicaElectionConstraint: { enabled: true } } }).field, 'spec.postgresql.syncReplicaElectionConstraint');
    assert.deepEqual(unsupportedFields({ primaryUpdateMethod: 'restart', minSyncReplicas: 0, replica: { enabled: false }, backup: null }), []);
  });

  it('accepts a clone of another cluster and a replica cluster (externalClusters without a CNPG-I plugin)', () => {
    const origin = { name: 'origin', connectionParameters: { host: 'origin-rw', user: 'streaming_replica' }, sslKey: { name: 'k', key: 'tls.key' }, sslCert: { name: 'k', key: 'tls.crt' } };
    assert.deepEqual(unsupportedFields({ bootstrap: { pg_basebackup: { source: 'origin' } }, replica: { enabled: true, source: 'origin' }, externalClusters: [origin] }), []);
    assert.deepEqual(unsupportedFields({ replica: { primary: 'a', self: 'b', source: 'origin' }, externalClusters: [origin, { name: 'store', barmanObjectStore: { destinationPath: 's3://b/' } }] }), []);
  });

  it('refuses a field unknown to CNPG (a typo) where the table splits an object', () => {
    assert.equal(refusal({ bootstrap: { recvery: {} } }).field, 'spec.bootstrap.recvery');
    assert.equal(refusal({ postgresql: { parametrs: {} } }).field, 'spec.postgresql.parametrs');
    assert.equal(refusal({ instancess: 3 }).field, 'spec.instancess');
  });

  it('the annotation must be a JSON list of refused fields', () => {
    for (const [value, pattern] of [
      ['spec.backup', /must be a JSON list of field paths/],
      ['[1]', /must be a JSON list of field paths/],
      ['["spec.bakup"]', /lists spec\.bakup, which is not a field pgim refuses/],
      ['["spec.instances"]', /lists spec\.instances, which is not a field pgim refuses/],
    ] as const) {
      const err = refusal({}, { [ignoreUnsupportedFieldsAnnotation]: value });
      assert.equal(err.field, `metadata.annotations.${ignoreUnsupportedFieldsAnnotation}`);
      assert.match(err.message, pattern);
    }
  });

  it('a bootstrap.recovery whose source is not among externalClusters does not parse, naming the field', () => {
    const text = 'apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata:\n  name: pg\nspec:\n  bootstrap:\n    recovery:\n      source: origin\n';
    assert.throws(() => parseClusterManifest(text, 'f.yaml'), (err: unknown) => err instanceof ConfigError && err.field === 'spec.bootstrap.recovery.source');
  });

  it('accepts externalClusters entries with a barmanObjectStore (recovery sources)', () => {
    assert.deepEqual(unsupportedFields({ externalClusters: [{ name: 'origin', barmanObjectStore: { destinationPath: 's3://b/p' } }] }), []);
  });
});
