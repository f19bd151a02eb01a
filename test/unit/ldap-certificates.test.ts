import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseClusterManifest } from '../../src/cluster/parse.js';
import { FilesControlPlane } from '../../src/controlplane/files.js';
import { readLdapBindPassword } from '../../src/credentials/ldap.js';
import { errorOf, rejectionOf } from '../support/config-error.js';
import { redactHbaSecrets, redactJsonLines } from '../../src/log/redact.js';
import { renderConfiguration } from '../../src/render/index.js';
import { renderLdapRule } from '../../src/render/ldap.js';
import { generateClusterCertificates } from '../../src/tls/generate.js';
import { loadTlsMaterial } from '../../src/tls/material.js';

function cluster(spec: string, name = 'pg') {
  return parseClusterManifest(`apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata:\n  name: ${name}\nspec:\n  instances: 1\n${spec}`, 'cluster.yaml');
}

const searchBind = `  postgresql:
    ldap:
      server: ldapServer
      port: 1234
      scheme: ldap
      tls: true
      bindSearchAuth:
        baseDN: ldapBaseDN
        bindDN: ldapBindDN
        bindPassword: { name: ldap-bind, key: password }
        searchAttribute: ldapSearchAttribute
`;

describe('spec.postgresql.ldap: the pg_hba rule CNPG renders', () => {
  it("search+bind: CNPG's options in CNPG's order (pkg/management/postgres/configuration_test.go)", () => {
    const { ldap } = cluster(searchBind);
    assert.ok(ldap);
    assert.equal(
      renderLdapRule(ldap, 'pw'),
      'host all all 0.0.0.0/0 ldap ldapserver="ldapServer" ldapport=1234 ldapscheme="ldap" ldaptls=1 ldapbasedn="ldapBaseDN" ldapbinddn="ldapBindDN" ldapbindpasswd="pw" ldapsearchattribute="ldapSearchAttribute"',
    );
    const filter = cluster(searchBind.replace('searchAttribute: ldapSearchAttribute', 'searchFilter: "(uid=$username)"')).ldap;
    assert.ok(filter);
    assert.match(renderLdapRule(filter, 'pw'), / ldapbindpasswd="pw" ldapsearchfilter="\(uid=\$username\)"$/);
  });

  it('simple bind: prefix and suffix, no port, scheme or tls unless set', () => {
    const { ldap } = cluster('  postgresql:\n    ldap:\n      server: ldap.example.com\n      bindAsAuth: { prefix: "cn=", suffix: ",dc=example,dc=com" }\n');
    assert.ok(ldap);
    assert.equal(renderLdapRule(ldap, ''), 'host all all 0.0.0.0/0 ldap ldapserver="ldap.example.com" ldapprefix="cn=" ldapsuffix=",dc=example,dc=com"');
  });

  it('quotes every value as CNPG does: a " is doubled, so a password cannot add options (catalogue #21)', () => {
    const { ldap } = cluster(searchBind);
    assert.ok(ldap);
    assert.match(renderLdapRule(ldap, 'a" ldapserver="evil #x'), / ldapbindpasswd="a"" ldapserver=""evil #x" /);
  });

  it('no mode, no rule (CNPG GetEnableLDAPAuth); the rule sits between the user rules and the default rule', () => {
    assert.equal(cluster('  postgresql:\n    ldap:\n      server: ldap.example.com\n').ldap, undefined);
    const rendered = renderConfiguration({
      cluster: cluster(`${searchBind}    pg_hba:\n      - hostssl app app 10.0.0.0/8 scram-sha-256\n`),
      source: 'cluster.yaml',
      osUser: 'postgres',
      port: 5432,
      listenAddresses: '*',
      socketDirectory: '/run',
      logDirectory: '/log',
      ldapBindPassword: 'secret-pw',
    });
    const lines = rendered.pgHba.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    assert.deepEqual(lines.slice(-3).map((l) => l.split(' ').slice(0, 5).join(' ')), [
      'hostssl app app 10.0.0.0/8 scram-sha-256',
      'host all all 0.0.0.0/0 ldap',
      'host all all all scram-sha-256',
    ]);
    assert.match(rendered.pgHba, /# LDAP CONFIGURATION \(optional\)\n#\nhost all all 0\.0\.0\.0\/0 ldap .*ldapbindpasswd="secret-pw"/);
  });

  it("refuses what CNPG's webhook refuses, and what PostgreSQL would refuse, naming the field", () => {
    assert.match(errorOf(() => cluster('  postgresql:\n    ldap:\n      bindAsAuth: { prefix: "cn=" }\n')).message, /spec\.postgresql\.ldap: server must be set/);
    assert.match(
      errorOf(() => cluster('  postgresql:\n    ldap:\n      server: s\n      bindAsAuth: {}\n      bindSearchAuth: {}\n')).message,
      /spec\.postgresql\.ldap: bindAsAuth and bindSearchAuth cannot be used together/,
    );
    assert.match(
      errorOf(() => cluster(searchBind.replace('searchAttribute: ldapSearchAttribute', 'searchAttribute: uid\n        searchFilter: "(uid=$username)"'))).message,
      /spec\.postgresql\.ldap\.bindSearchAuth: searchAttribute and searchFilter cannot be used together/,
    );
    assert.match(errorOf(() => cluster('  postgresql:\n    ldap:\n      server: "a\\nhost all all all trust"\n      bindAsAuth: {}\n')).message, /spec\.postgresql\.ldap\.server: must not contain a line break/);
    assert.match(errorOf(() => cluster('  postgresql:\n    ldap:\n      server: s\n      scheme: ftp\n      bindAsAuth: {}\n')).message, /spec\.postgresql\.ldap\.scheme: must be ldap or ldaps/);
  });

  it("masks the bind password in the pg_hba line PostgreSQL logs on a failed login (the log pipe's redaction)", () => {
    const rule = 'host all all 0.0.0.0/0 ldap ldapserver="s" ldapbinddn="cn=x" ldapbindpasswd="p w ""q"" #,x=y" ldapsearchattribute="uid"';
    const detail = `Connection matched pg_hba.conf line 25: "${rule}"`;
    assert.equal(redactHbaSecrets(detail), 'Connection matched pg_hba.conf line 25: "host all all 0.0.0.0/0 ldap ldapserver="s" ldapbinddn="cn=x" ldapbindpasswd=******** ldapsearchattribute="uid""');
    assert.equal(redactHbaSecrets('x ldapbindpasswd="a""b""" y'), 'x ldapbindpasswd=******** y', 'an escaped quote at the end of the value');
    assert.equal(redactHbaSecrets('x ldapbindpasswd="a""b"" y"'), 'x ldapbindpasswd=********', 'a quoted space is part of the value');
    assert.equal(redactHbaSecrets('line: "... ldapbindpasswd="pw""'), 'line: "... ldapbindpasswd=********', 'the last option of the line');
    assert.equal(redactHbaSecrets('ldapbindpasswd=bare next'), 'ldapbindpasswd=******** next');
    const line = JSON.stringify({ level: 'info', logger: 'postgres', record: { message: 'LDAP authentication failed for user "alice"', detail } });
    const other = JSON.stringify({ level: 'info', record: { message: 'untouched' } });
    const out = redactJsonLines(Buffer.from(`${other}\n${line}\n`)).toString();
    assert.ok(!out.includes('p w'), out);
    assert.equal(out.split('\n')[0], other);
    assert.equal((JSON.parse(out.split('\n')[1] ?? '') as { record: { detail: string } }).record.detail, redactHbaSecrets(detail));
    const plain = Buffer.from(`${other}\n`);
    assert.equal(redactJsonLines(plain), plain, 'no copy when there is nothing to mask');
  });

  describe('the bind password Secret', () => {
    let dir: string;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'pgim-ldap-unit-'));
    });
    after(() => rm(dir, { recursive: true, force: true }));

    it('reads the key; a missing Secret or key, or a line break, is refused naming the Secret and key, never the value', async () => {
      const plane = new FilesControlPlane(dir);
      const c = cluster(searchBind);
      assert.match((await rejectionOf(readLdapBindPassword(plane, c))).message, /^secret ldap-bind: not found/);
      await mkdir(join(dir, 'secrets', 'ldap-bind'), { recursive: true });
      await writeFile(join(dir, 'secrets', 'ldap-bind', 'other'), 'x');
      assert.equal((await rejectionOf(readLdapBindPassword(plane, c))).message, 'secret ldap-bind: password: key is missing');
      await writeFile(join(dir, 'secrets', 'ldap-bind', 'password'), 'S3NTINEL-line\nhost all all all trust');
      const err = await rejectionOf(readLdapBindPassword(plane, c));
      assert.equal(err.message, 'secret ldap-bind: password: contains a line break or NUL');
      await writeFile(join(dir, 'secrets', 'ldap-bind', 'password'), 'good " pw');
      assert.equal(await readLdapBindPassword(plane, c), 'good " pw');
      assert.equal(await readLdapBindPassword(plane, cluster('')), undefined, 'LDAP off: nothing read');
    });
  });
});

describe('spec.certificates: user-provided Secrets, a client CA distinct from the server CA', () => {
  let dir: string;
  const secrets = (): string => join(dir, 'secrets');
  const spec = '  certificates:\n    serverCASecret: s-ca\n    serverTLSSecret: s-server\n    clientCASecret: c-ca\n    replicationTLSSecret: c-replication\n';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgim-certs-unit-'));
    await generateClusterCertificates({ cluster: 's', instances: 1, hosts: [], outDir: secrets() });
    await generateClusterCertificates({ cluster: 'c', instances: 1, hosts: [], outDir: secrets() });
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("resolves CNPG's names: the spec's, else status.certificates, else <cluster>-ca/-server/-replication", () => {
    assert.deepEqual(cluster('').certificates, { serverCA: 'pg-ca', serverTLS: 'pg-server', clientCA: 'pg-ca', replicationTLS: 'pg-replication', userProvided: false });
    assert.deepEqual(cluster(spec).certificates, { serverCA: 's-ca', serverTLS: 's-server', clientCA: 'c-ca', replicationTLS: 'c-replication', userProvided: true });
    const fromStatus = parseClusterManifest('apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata:\n  name: pg\nspec:\n  instances: 1\nstatus:\n  certificates:\n    serverTLSSecret: issued\n', 'f');
    assert.equal(fromStatus.certificates.serverTLS, 'issued');
    assert.equal(fromStatus.observability.serverTlsSecretName, 'issued');
    assert.equal(cluster(spec).observability.serverTlsSecretName, 's-server', 'the metrics/status TLS follows the spec too');
  });

  it('loads the server pair against the server CA and the replication pair against the client CA', async () => {
    const material = await loadTlsMaterial(new FilesControlPlane(dir), cluster(spec).certificates);
    assert.ok(material);
    assert.equal(material.serverCaCert, await readFile(join(secrets(), 's-ca', 'ca.crt'), 'utf8'));
    assert.equal(material.clientCaCert, await readFile(join(secrets(), 'c-ca', 'ca.crt'), 'utf8'));
    assert.deepEqual(material.facts.map((f) => f.secret), ['s-ca', 'c-ca', 's-server', 'c-replication']);
  });

  it('refuses a server certificate from the client CA, a replication certificate from the server CA, and a missing Secret', async () => {
    const plane = new FilesControlPlane(dir);
    const swapped = (await rejectionOf(loadTlsMaterial(plane, cluster(spec.replace('serverTLSSecret: s-server', 'serverTLSSecret: c-server')).certificates))).message;
    assert.match(swapped, /^secret c-server: tls\.crt: certificate is not issued by the CA \(CN=s-ca/);
    const replication = (await rejectionOf(loadTlsMaterial(plane, cluster(spec.replace('replicationTLSSecret: c-replication', 'replicationTLSSecret: s-replication')).certificates))).message;
    assert.match(replication, /^secret s-replication: tls\.crt: certificate is not issued by the CA \(CN=c-ca/);
    const missing = (await rejectionOf(loadTlsMaterial(plane, cluster(spec.replace('clientCASecret: c-ca', 'clientCASecret: nope')).certificates))).message;
    assert.equal(missing, 'secret nope: not found (named by spec.certificates)');
  });

  it('accepts a CA bundle (old and new CA while a CA rotates) for either CA', async () => {
    const bundle = join(secrets(), 'bundle-ca');
    await mkdir(bundle, { recursive: true });
    await writeFile(join(bundle, 'ca.crt'), `${await readFile(join(secrets(), 's-ca', 'ca.crt'), 'utf8')}\n${await readFile(join(secrets(), 'c-ca', 'ca.crt'), 'utf8')}\n`);
    const both = spec.replace('serverCASecret: s-ca', 'serverCASecret: bundle-ca').replace('clientCASecret: c-ca', 'clientCASecret: bundle-ca');
    const material = await loadTlsMaterial(new FilesControlPlane(dir), cluster(both).certificates);
    assert.ok(material);
    assert.equal(material.facts.length, 3, 'one CA Secret counted once');
    // openssl agrees the bundle verifies both leaves (what PostgreSQL and libpq will do with it).
    for (const leaf of ['s-server', 'c-replication']) {
      execFileSync('openssl', ['verify', '-CAfile', join(bundle, 'ca.crt'), join(secrets(), leaf, 'tls.crt')], { stdio: 'pipe' });
    }
  });
});
