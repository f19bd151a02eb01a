import { strict as assert } from 'node:assert';
import { ConfigError } from '../../src/errors/index.js';
import { brokenCipher, checkTransportParameters, identMapsEveryoneToSuperuser } from '../../src/render/security-warnings.js';
import { statusDocumentUrl } from '../../src/webserver/client.js';

describe('security warnings: TLS settings and ident maps (issue 24, item 11)', () => {
  const check = (parameters: Record<string, string>): string[] =>
    checkTransportParameters(new Map(Object.entries(parameters)), 'cluster.yaml').map((w) => `${w.kind} ${w.field}`);

  it('accepts the defaults silently, TLS 1.2 with a warning, refuses TLS 1.0/1.1 in any case', () => {
    assert.deepEqual(check({ ssl_min_protocol_version: 'TLSv1.3', ssl_max_protocol_version: '' }), []);
    assert.deepEqual(check({ ssl_min_protocol_version: 'tlsv1.2' }), ['tls_protocol spec.postgresql.parameters["ssl_min_protocol_version"]']);
    assert.deepEqual(check({ ssl_max_protocol_version: 'TLSv1.2' }), ['tls_protocol spec.postgresql.parameters["ssl_max_protocol_version"]']);
    for (const parameters of [{ ssl_min_protocol_version: 'TLSv1' }, { ssl_min_protocol_version: 'TLSV1.1' }, { ssl_min_protocol_version: 'SSLv3' }, { ssl_max_protocol_version: 'TLSv1.1' }]) {
      assert.throws(() => check(parameters), (err: unknown) => err instanceof ConfigError && err.field.includes(Object.keys(parameters)[0] ?? '?'));
    }
  });

  it('refuses cipher lists that add NULL, anonymous, export or broken suites; exclusions and reordering are fine', () => {
    for (const bad of ['NULL', 'eNULL', 'aNULL', 'HIGH:aNULL', 'ALL,COMPLEMENTOFALL', 'EXP-RC4-MD5', 'DES-CBC3-SHA', 'ECDHE-RSA-NULL-SHA', 'LOW', 'RC4-SHA', 'aNULL+SHA']) {
      assert.notEqual(brokenCipher(bad), undefined, bad);
    }
    for (const good of ['HIGH:MEDIUM:+3DES:!aNULL', 'HIGH:!aNULL:!eNULL:!MD5:-RC4', 'ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256', 'DEFAULT']) {
      assert.equal(brokenCipher(good), undefined, good);
    }
  });

  it('flags a pg_ident regex that maps every OS user to the superuser, not narrower or other maps', () => {
    for (const line of ['m /^(.*)$ postgres', 'm /.* postgres', 'm "/^.*$" postgres', 'm / postgres']) assert.ok(identMapsEveryoneToSuperuser(line), line);
    for (const line of ['m /^(.*)$ \\1', 'm /^app.*$ postgres', 'm root postgres', 'm /^(.*)$ app', 'm /[ postgres']) assert.ok(!identMapsEveryoneToSuperuser(line), line);
  });
});

describe('pgim status --url (issue 24, item 16)', () => {
  it("takes the instance's base URL as its /pg/status, and any other path as given", () => {
    assert.equal(statusDocumentUrl('http://127.0.0.1:8000').href, 'http://127.0.0.1:8000/pg/status');
    assert.equal(statusDocumentUrl('https://db-1:8000/').href, 'https://db-1:8000/pg/status');
    assert.equal(statusDocumentUrl('http://127.0.0.1:8000/pg/status').href, 'http://127.0.0.1:8000/pg/status');
    assert.equal(statusDocumentUrl('http://proxy/db-1/pg/status').href, 'http://proxy/db-1/pg/status');
  });
});
