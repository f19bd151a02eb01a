import { strict as assert } from 'node:assert';
import { parseClusterManifest } from '../../src/cluster/parse.js';
import { tablespaceLocation } from '../../src/cluster/tablespaces.js';
import type { ConfigError } from '../../src/errors/index.js';
import { errorOf } from '../support/config-error.js';
import { tablespacesRoot } from '../../src/options/index.js';
import { renderCustomConf } from '../../src/render/custom-conf.js';

const manifest = (tablespaces: string): string =>
  `apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata:\n  name: pg\nspec:\n  instances: 1\n  tablespaces:\n${tablespaces.replace(/^/gm, '    ')}\n`;

const refusal = (tablespaces: string): ConfigError => errorOf(() => parseClusterManifest(manifest(tablespaces), 'cluster.yaml'));

describe('spec.tablespaces (CNPG TablespaceConfiguration)', () => {
  it('name, owner (default postgres), temporary (default false); storage is the operator\'s', () => {
    const cluster = parseClusterManifest(manifest('- name: fast\n  owner: {name: app}\n  storage: {size: 1Gi}\n- name: scratch\n  temporary: true\n  storage: {size: 1Gi}'), 'cluster.yaml');
    assert.deepEqual(cluster.tablespaces, [
      { name: 'fast', owner: 'app', temporary: false },
      { name: 'scratch', owner: 'postgres', temporary: true },
    ]);
  });

  it("CNPG's name rules: a Postgres identifier, not pg_*, at most 63 characters, unique ignoring case", () => {
    assert.match(refusal('- name: pg_mine').message, /spec\.tablespaces\[0\]\.name: tablespace names beginning 'pg_' are reserved for Postgres/);
    assert.match(refusal('- name: "bad-name"').message, /must be valid Postgres identifiers/);
    assert.match(refusal(`- name: ${'a'.repeat(64)}`).message, /maximum length/);
    assert.match(refusal('- name: fast\n- name: FAST').message, /spec\.tablespaces\[1\]\.name: duplicate tablespace name/);
  });

  it("the folder: <root>/<name>/data; the root is CNPG's mount root in Kubernetes mode, <PGDATA>-tablespaces in files mode", () => {
    assert.equal(tablespaceLocation('/var/lib/postgresql/tablespaces/', 'fast'), '/var/lib/postgresql/tablespaces/fast/data');
    assert.equal(tablespacesRoot({ pgdata: '/srv/pg/data' }), '/srv/pg/data-tablespaces');
    assert.equal(tablespacesRoot({ pgdata: '/srv/pg/data', kubernetes: { kubeconfig: undefined, namespace: undefined, clusterName: 'pg' } }), '/var/lib/postgresql/tablespaces');
    assert.equal(tablespacesRoot({ pgdata: '/srv/pg/data', tablespacesDir: '/mnt/tbs' }), '/mnt/tbs');
  });

  it('temporary tablespaces become temp_tablespaces, sorted, as CNPG sets it', () => {
    const base = { clusterName: 'pg', userParameters: new Map<string, string>(), port: 5432, listenAddresses: '*', socketDirectory: '/run', logDirectory: '/log' };
    assert.match(renderCustomConf({ ...base, temporaryTablespaces: ['z_tmp', 'a_tmp'] }).text, /^temp_tablespaces = 'a_tmp,z_tmp'$/m);
    assert.doesNotMatch(renderCustomConf({ ...base, temporaryTablespaces: [] }).text, /temp_tablespaces/);
  });
});
