import { strict as assert } from 'node:assert';
import { parseClusterManifest } from '../../src/cluster/parse.js';
import { renderConfiguration } from '../../src/render/index.js';
import { checkHbaLine, checkIdentLine, tokenizeHbaLine } from '../../src/render/hba-rules.js';
import { escapePassfileField, renderPgpass } from '../../src/render/pgpass.js';
import { validateUserParameters } from '../../src/render/parameters.js';
import { currentOsUserName } from '../../src/process/privileges.js';

describe('pg_hba / pg_ident line checks', () => {
  const good = [
    'host all all 0.0.0.0/0 scram-sha-256',
    'hostssl app app 10.0.0.0/8 scram-sha-256',
    'host all all ::1/128 md5',
    'host all all 192.168.1.0 255.255.255.0 scram-sha-256',
    'local all all peer map=local',
    'host "my db" all .example.com scram-sha-256 # comment',
    'host all all all ldap ldapserver="ldap.example.com" ldapport=389',
  ];
  for (const line of good) it(`accepts ${line}`, () => { assert.doesNotThrow(() => checkHbaLine(line)); });

  const bad: [string, RegExp][] = [
    ['host all all 0.0.0.0/0 md5\nhost all all all trust', /line break/],
    ['include_if_exists /etc/evil', /include directives/],
    ['INCLUDE_DIR x', /include directives/],
    ['local @/etc/passwd all reject', /@file/],
    ['host all @admins all scram-sha-256', /@file/],
    ['host all all 10.0.0.0/33 scram-sha-256', /invalid CIDR address/],
    ['host all all ::/129 scram-sha-256', /invalid CIDR address/],
    ['host all all 10.0.0.1 scram-sha-256', /needs a CIDR suffix or a netmask/],
    ['host all all all bogusmethod', /invalid authentication method "bogusmethod"/],
    ['hots all all all trust', /invalid connection type "hots"/],
    ['host all all', /too few fields/],
    ['host all all ${podselector:x} trust', /\$\{\.\.\.\} references/],
    ['host all all all scram-sha-256 "broken', /unterminated/],
  ];
  for (const [line, pattern] of bad) {
    it(`rejects ${JSON.stringify(line)}`, () => { assert.throws(() => checkHbaLine(line), pattern); });
  }

  it('a quoted @ is a name, not a file reference', () => {
    assert.doesNotThrow(() => checkHbaLine('host all "@odd" all scram-sha-256'));
    assert.deepEqual(tokenizeHbaLine('a "b c" "d""e"'), [
      { text: 'a', quoted: false },
      { text: 'b c', quoted: true },
      { text: 'de', quoted: true },
    ]);
  });

  it('flags trust over TCP and catch-all rules', () => {
    assert.deepEqual(checkHbaLine('host all all all trust'), { trust: true, catchAll: true });
    assert.deepEqual(checkHbaLine('local all all trust'), { trust: false, catchAll: false });
    assert.deepEqual(checkHbaLine('host all all all reject'), { trust: false, catchAll: true });
  });

  it('checks pg_ident mappings', () => {
    assert.doesNotThrow(() => { checkIdentLine('mymap alice app'); });
    assert.throws(() => { checkIdentLine('mymap alice'); }, /exactly three fields/);
    assert.throws(() => { checkIdentLine('include /x'); }, /include directives/);
    assert.throws(() => { checkIdentLine('m a b\nm c d'); }, /line break/);
  });
});

describe('default pg_hba rule', () => {
  const manifest = (hba: string[], annotation?: string): string =>
    [
      'apiVersion: postgresql.cnpg.io/v1',
      'kind: Cluster',
      'metadata:',
      '  name: c',
      ...(annotation === undefined ? [] : ['  annotations:', `    pgim.io/hbaDefaultRule: ${annotation}`]),
      'spec:',
      '  postgresql:',
      `    pg_hba: ${JSON.stringify(hba)}`,
    ].join('\n');
  const render = (text: string) =>
    renderConfiguration({ cluster: parseClusterManifest(text, 'c.yaml'), source: 'c.yaml', osUser: 'postgres', port: 5432, listenAddresses: '*', socketDirectory: '/s', logDirectory: '/l' });

  it('is appended by default', () => {
    assert.match(render(manifest(['host app app 10.0.0.0/8 scram-sha-256'])).pgHba, /^host all all all scram-sha-256$/m);
  });
  it('is left out when the annotation disables it', () => {
    assert.doesNotMatch(render(manifest(['host app app 10.0.0.0/8 scram-sha-256'], 'disabled')).pgHba, /^host all all all/m);
  });
  it('is left out when the user list ends with its own catch-all rule', () => {
    const hba = render(manifest(['host app app 10.0.0.0/8 scram-sha-256', 'host all all all reject'])).pgHba;
    assert.doesNotMatch(hba, /^host all all all scram-sha-256$/m);
    assert.match(hba, /^host all all all reject$/m);
  });
  it('rejects an unknown annotation value, naming it', () => {
    assert.throws(() => render(manifest([], 'maybe')), /metadata\.annotations\["pgim\.io\/hbaDefaultRule"\]: must be enabled or disabled/);
  });
  it('warns about trust rules', () => {
    assert.equal(render(manifest(['host all all 10.0.0.0/8 trust'])).securityWarnings.length, 1);
  });
  it('changes the render hash when only pg_hba changes', () => {
    assert.notEqual(render(manifest(['host a a 10.0.0.0/8 md5'])).configHash, render(manifest(['host a a 10.0.0.0/16 md5'])).configHash);
  });
});

describe('.pgpass', () => {
  it("escapes ':' and '\\\\' (security-catalogue c3 row 24)", () => {
    assert.equal(escapePassfileField("p:a\\ss'w"), "p\\:a\\\\ss'w");
    assert.equal(renderPgpass([{ username: 'weird', password: "p:a\\ss'w" }], 55432), "*:55432:*:weird:p\\:a\\\\ss'w\n");
  });
  it('refuses a line break (row 25)', () => {
    assert.throws(() => escapePassfileField('a\nb'), /line break/);
  });
});

describe('values and users', () => {
  it('rejects a lone surrogate in a parameter value instead of writing U+FFFD (row 9)', () => {
    assert.throws(() => validateUserParameters({ application_name: 'a\uD800' }, 'c.yaml'), /lone surrogate/);
  });
  it('rejects a huge value (row 10)', () => {
    assert.throws(() => validateUserParameters({ application_name: 'x'.repeat(17 * 1024) }, 'c.yaml'), /longer than/);
  });
  it('a UID without a passwd entry is an explicit error, never a match-all map (row 23)', () => {
    assert.throws(
      () =>
        currentOsUserName(() => {
          throw new Error('ENOENT');
        }),
      /has no passwd entry/,
    );
    assert.equal(currentOsUserName(() => ({ username: 'alice' })), 'alice');
  });
});
