import { strict as assert } from 'node:assert';
import { parseClusterManifest } from '../../src/cluster/parse.js';
import { errorOf } from '../support/config-error.js';
import { validateUserParameters } from '../../src/render/parameters.js';

const minimal = 'apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata:\n  name: pg\nspec:\n  instances: 1\n';

describe('Cluster manifest parsing', () => {
  it('applies CNPG defaults', () => {
    const c = parseClusterManifest(minimal, 'f.yaml');
    assert.equal(c.name, 'pg');
    assert.deepEqual(c.bootstrap, { database: 'app', owner: 'app', secretName: 'pg-app' });
    assert.equal(c.superuserSecretName, 'pg-superuser');
    assert.equal(c.enableSuperuserAccess, false);
    assert.equal(c.smartShutdownTimeoutSeconds, 180);
    assert.equal(c.stopDelaySeconds, 1800);
    assert.equal(c.switchoverDelaySeconds, 3600);
    assert.equal(c.primaryUpdateStrategy, 'unsupervised');
    assert.deepEqual(c.parameters, {});
  });

  it('the owner defaults to the database name; secrets follow bootstrap.initdb.secret', () => {
    const c = parseClusterManifest(
      `${minimal}  bootstrap:\n    initdb:\n      database: shop\n      secret:\n        name: shop-creds\n`,
      'f.yaml',
    );
    assert.deepEqual(c.bootstrap, { database: 'shop', owner: 'shop', secretName: 'shop-creds' });
  });

  it('tolerates unknown fields (a full CNPG manifest)', () => {
    const c = parseClusterManifest(`${minimal}  storage:\n    size: 1Gi\n  monitoring:\n    enablePodMonitor: true\n`, 'f.yaml');
    assert.equal(c.instances, 1);
  });

  it('reads status.targetPrimary', () => {
    const c = parseClusterManifest(`${minimal}status:\n  targetPrimary: pg-2\n`, 'f.yaml');
    assert.equal(c.targetPrimary, 'pg-2');
  });

  const cases: [string, string, RegExp][] = [
    ['negative stopDelay', `${minimal}  stopDelay: -1\n`, /^f\.yaml: spec\.stopDelay: must not be negative$/],
    ['fractional instances', minimal.replace('instances: 1', 'instances: 1.5'), /^f\.yaml: spec\.instances: must be a whole number$/],
    ['bad name', minimal.replace('name: pg', 'name: Bad_Name'), /^f\.yaml: metadata\.name: must be a DNS label/],
    ['missing metadata', 'apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nspec: {}\n', /^f\.yaml: metadata: is required$/],
    ['bad strategy', `${minimal}  primaryUpdateStrategy: sometimes\n`, /^f\.yaml: spec\.primaryUpdateStrategy: /],
    ['reserved owner', `${minimal}  bootstrap:\n    initdb:\n      owner: postgres\n`, /spec\.bootstrap\.initdb\.owner: is reserved/],
    ['pg_hba not a list of strings', `${minimal}  postgresql:\n    pg_hba:\n      - {a: 1}\n`, /spec\.postgresql\.pg_hba\[0\]: must be a string/],
    ['duplicate YAML keys', `${minimal}  instances: 2\n`, /^f\.yaml: invalid YAML at line 7, column 3: DUPLICATE_KEY$/],
  ];
  for (const [what, text, pattern] of cases) {
    it(`rejects ${what} with the file and field path`, () => {
      assert.match(errorOf(() => parseClusterManifest(text, 'f.yaml')).message, pattern);
    });
  }
});

describe('parameter validation', () => {
  const bad: [string, RegExp][] = [
    ['#\narchive_command', /invalid parameter name/],
    ['archive_command\nrestart_after = 0', /invalid parameter name/],
    ['a=b', /invalid parameter name/],
    [' shared_buffers', /invalid parameter name/],
    ['', /invalid parameter name/],
    ['ARCHIVE_COMMAND', /fixed configuration parameter/],
    ['Hba_File', /blocked configuration parameter/],
    ['include_if_exists', /include directives/],
    ['INCLUDE_DIR', /include directives/],
    ['a.b.c', /invalid parameter name/],
  ];
  for (const [key, pattern] of bad) {
    it(`rejects key ${JSON.stringify(key)}`, () => {
      assert.match(errorOf(() => validateUserParameters({ [key]: 'x' }, 'c.yaml')).message, pattern);
    });
  }

  it('rejects a NUL in a value without echoing the value', () => {
    const err = errorOf(() => validateUserParameters({ work_mem: '4MB\u0000secret-ish' }, 'c.yaml'));
    assert.match(err.message, /work_mem.*NUL/);
    assert.ok(!err.message.includes('secret-ish'));
  });

  it('rejects the same key twice in different case', () => {
    assert.match(errorOf(() => validateUserParameters({ work_mem: '1MB', WORK_MEM: '2MB' }, 'c.yaml')).message, /set twice/);
  });

  it('accepts extension namespaces and lowercases keys', () => {
    assert.deepEqual([...validateUserParameters({ 'PG_Stat_Statements.max': '5' }, 'c.yaml')], [['pg_stat_statements.max', '5']]);
  });
});
