import { strict as assert } from 'node:assert';
import { parseClusterManifest } from '../../src/cluster/parse.js';
import { renderConfiguration, ensureIncludes } from '../../src/render/index.js';
import { renderCustomConf } from '../../src/render/custom-conf.js';
import { escapeConfValue } from '../../src/render/escape.js';
import { assertGolden } from '../support/golden.js';

const manifest = `
apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata:
  name: cluster-example
spec:
  instances: 3
  postgresql:
    parameters:
      Work_Mem: "8MB"
      log_line_prefix: "%m [%p] it's \\\\ here"
      pg_stat_statements.max: "10000"
    pg_hba:
      - hostssl app app 10.0.0.0/8 scram-sha-256
    pg_ident:
      - mymap alice app
`;

function render(text = manifest) {
  return renderConfiguration({
    cluster: parseClusterManifest(text, 'cluster.yaml'),
    source: 'cluster.yaml',
    osUser: 'postgres',
    port: 5432,
    listenAddresses: '*',
    socketDirectory: '/controller/run',
    logDirectory: '/controller/log',
  });
}

describe('renderers (golden files)', () => {
  it('custom.conf: defaults, user parameters (lowercased), mandatory values, hash last', async () => {
    const out = render();
    await assertGolden('custom.conf', out.customConf);
    const lines = out.customConf.trimEnd().split('\n');
    assert.match(lines.at(-1) ?? '', /^pgim\.config_sha256 = '[0-9a-f]{64}'$/);
    assert.match(lines.at(-2) ?? '', /^pgim\.cluster_config_sha256 = '[0-9a-f]{64}'$/);
    const keys = lines.slice(0, -2).map((l) => l.split(' = ')[0] ?? '');
    assert.deepEqual(keys, [...keys].sort(), 'sorted');
    assert.equal(new Set(keys).size, keys.length, 'one line per key');
    assert.ok(out.customConf.includes("work_mem = '8MB'"));
    assert.ok(out.customConf.includes("restart_after_crash = 'false'"));
  });

  it('pg_hba.conf: fixed rules, user rules in order, default scram rule last', async () => {
    await assertGolden('pg_hba.conf', render().pgHba);
  });

  it('pg_ident.conf: fixed maps with the real OS user, then user maps', async () => {
    await assertGolden('pg_ident.conf', render().pgIdent);
  });

  it('the same input renders the same bytes, and any change changes the hash', () => {
    const a = render();
    const b = render();
    assert.equal(a.customConf, b.customConf);
    const c = render(manifest.replace('8MB', '16MB'));
    assert.notEqual(a.configHash, c.configHash);
  });

  it('a user value never displaces a mandatory one, whatever the case', () => {
    const out = renderCustomConf({
      clusterName: 'x',
      userParameters: new Map([['wal_level', 'replica']]),
      port: 6000,
      listenAddresses: '127.0.0.1',
      socketDirectory: '/s',
      logDirectory: '/l',
    });
    assert.ok(out.text.includes("wal_level = 'replica'"), 'defaults can be overridden');
    assert.ok(out.text.includes("port = '6000'"));
    assert.ok(out.text.includes("listen_addresses = '127.0.0.1'"));
  });

  it('escapes values as CNPG does', () => {
    assert.equal(escapeConfValue("it's"), "it''s");
    assert.equal(escapeConfValue('a\\b'), 'a\\\\b');
    assert.equal(escapeConfValue('l1\nl2\r\t\b\f'), 'l1\\nl2\\r\\t\\b\\f');
  });

  it('appends include lines to postgresql.conf once', () => {
    const once = ensureIncludes('max_connections = 100\n');
    assert.equal(ensureIncludes(once), once);
    assert.match(once, /^include 'custom\.conf'$/m);
    assert.match(once, /^include 'override\.conf'$/m);
    assert.ok(ensureIncludes('x = 1').startsWith('x = 1\n'));
  });

  it('refuses line breaks in pg_hba and pg_ident entries, naming the entry', () => {
    const bad = manifest.replace('- hostssl app app 10.0.0.0/8 scram-sha-256', '- "host all all 0.0.0.0/0 md5\\nhost all all all trust"');
    assert.throws(() => render(bad), /cluster\.yaml: spec\.postgresql\.pg_hba\[0\]: contains a line break/);
  });
});
