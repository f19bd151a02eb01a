import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { writeClusterYaml, writeConfigDir, type TestClusterOptions } from '../../test-kit/config.js';
import { eventually, freePort, handToPostgres, makeTempDir, removeTempDir } from '../../test-kit/env.js';
import { killPostmaster, PgimProcess, pgimEntry, query, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';
import { requireSlapd, Slapd } from '../../test-kit/slapd.js';

const run = promisify(execFile);

/**
 * spec.postgresql.ldap against a real OpenLDAP slapd on 127.0.0.1: CNPG's pg_hba rule, the bind password from its
 * Secret, live changes, StartTLS. The directory lets only bound accounts search, so a wrong bind password breaks
 * search+bind: a login that works proves the bind password PostgreSQL holds is the directory's.
 */
describe('LDAP authentication (spec.postgresql.ldap) against a real OpenLDAP slapd (real PostgreSQL 15)', function () {
  this.timeout(300_000);
  const marker = `S3NTINEL-${Math.random().toString(36).slice(2, 10)}`;
  const secrets = { appPassword: 'ldap-app-pw', superuserPassword: 'ldap-su-pw' };
  const alice = { uid: 'alice', password: 'alice-directory-pw' };
  const suffix = 'dc=example,dc=org';
  let bindPassword = `${marker}-bind-1`;
  let base: string;
  let paths: PgimPaths;
  let ports: PgimPorts;
  let pgim: PgimProcess;
  let slapd: Slapd;
  let cluster: TestClusterOptions;
  let postmaster = 0;
  /** What before() set up, undone in reverse by after(). */
  const cleanup: (() => Promise<unknown>)[] = [];

  const bindSecretDir = (): string => join(paths.configDir, 'secrets', 'ldap-bind');
  const ldap = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
    server: '127.0.0.1',
    port: slapd.port,
    scheme: 'ldap',
    bindSearchAuth: { baseDN: slapd.peopleDN, bindDN: slapd.bindDN, bindPassword: { name: 'ldap-bind', key: 'password' }, searchAttribute: 'uid' },
    ...overrides,
  });
  const withLdap = (spec: Record<string, unknown>): TestClusterOptions => ({
    ...cluster,
    spec: { ...cluster.spec, postgresql: { parameters: { shared_buffers: '16MB', max_connections: '30', ...cluster.parameters }, pg_hba: cluster.pgHba ?? [], pg_ident: [], ldap: spec } },
  });
  /** psql over TCP to 127.0.0.1, where the LDAP rule applies; resolves to current_user or rejects with psql's error. */
  const login = async (user: string, password: string): Promise<string> => {
    try {
      const { stdout } = await run('psql', [`host=127.0.0.1 port=${String(ports.pgPort)} user=${user} dbname=app sslmode=disable connect_timeout=10`, '-Atc', 'SELECT current_user'], {
        env: { ...process.env, PGPASSWORD: password },
        timeout: 30_000,
      });
      return stdout.trim();
    } catch (err) {
      throw new Error((err as { stderr?: string }).stderr ?? String(err));
    }
  };
  const pgStatus = async (): Promise<{ postmasterPid: number; loadedConfigurationHash?: string; configurationError?: string }> =>
    (await (await fetch(`${pgim.statusUrl}/pg/status`)).json()) as { postmasterPid: number; loadedConfigurationHash?: string; configurationError?: string };
  const hbaOnDisk = (): Promise<string> => readFile(join(paths.pgdata, 'pg_hba.conf'), 'utf8');
  /** Waits until PostgreSQL has loaded a render whose pg_hba.conf matches. */
  const waitHba = async (pattern: RegExp): Promise<void> => {
    await eventually(async () => {
      const [hba, custom, s] = await Promise.all([hbaOnDisk(), readFile(join(paths.pgdata, 'custom.conf'), 'utf8'), pgStatus()]);
      const hash = /pgim\.cluster_config_sha256 = '([0-9a-f]+)'/.exec(custom)?.[1];
      return pattern.test(hba) && hash !== undefined && s.loadedConfigurationHash === hash ? true : undefined;
    }, 30_000, `pg_hba.conf matching ${String(pattern)} loaded`);
  };
  const writeBindSecret = async (password: string): Promise<void> => {
    const temp = join(bindSecretDir(), '.password.edit');
    await writeFile(temp, password);
    await handToPostgres(temp);
    await run('mv', [temp, join(bindSecretDir(), 'password')]);
  };

  before(async function () {
    requireSlapd(this);
    base = await makeTempDir('ldap');
    cleanup.push(() => removeTempDir(base));
    paths = { configDir: join(base, 'config'), pgdata: join(base, 'pgdata'), runtimeDir: join(base, 'runtime') };
    ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
    // The directory's TLS material: a test CA and a server certificate for 127.0.0.1, made by `pgim certs`.
    const ldapCerts = join(base, 'ldap-certs');
    await run(process.execPath, [pgimEntry, 'certs', '--cluster', 'ldap', '--instances', '1', '--out', ldapCerts]);
    await handToPostgres(ldapCerts);
    const pem = (secret: string, key: string): Promise<string> => readFile(join(ldapCerts, secret, key), 'utf8');
    slapd = await Slapd.start({
      dir: join(base, 'slapd'),
      suffix,
      bindPassword,
      users: [alice, { uid: 'bob', password: 'bob-directory-pw' }],
      tls: { cert: await pem('ldap-server', 'tls.crt'), key: await pem('ldap-server', 'tls.key'), ca: await pem('ldap-ca', 'ca.crt') },
    });
    cleanup.push(() => slapd.stop());
    // The app owner and the superuser keep their passwords over 127.0.0.1 (a user rule above the LDAP rule); every
    // other user coming over IPv4 authenticates against the directory.
    cluster = {
      enableSuperuserAccess: true,
      smartShutdownTimeout: 1,
      parameters: { log_connections: 'on', log_statement: 'all' },
      pgHba: ['host all app,postgres 127.0.0.1/32 scram-sha-256'],
    };
    cluster = withLdap(ldap());
    await writeConfigDir(paths.configDir, cluster, secrets);
    await mkdir(bindSecretDir(), { recursive: true });
    await writeFile(join(bindSecretDir(), 'password'), bindPassword);
    await handToPostgres(paths.configDir);
    // How ldaptls=1 trusts the directory's CA: libldap reads LDAPTLS_CACERT from postgres's environment, which pgim
    // passes through (in Kubernetes: spec.env plus a projected volume holding the CA).
    pgim = new PgimProcess('run', paths, ports, [], { LDAPTLS_CACERT: join(ldapCerts, 'ldap-ca', 'ca.crt') });
    cleanup.push(() => pgim.stop().catch(() => killPostmaster(paths.pgdata)));
    await pgim.waitReady(120_000);
    await query(ports.pgPort, 'postgres', secrets.superuserPassword, 'CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN');
    postmaster = (await pgStatus()).postmasterPid;
  });

  after(async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
  });

  it("renders CNPG's LDAP rule between the user rules and the default rule, in a 0600 pg_hba.conf", async () => {
    const hba = await hbaOnDisk();
    const expected = `host all all 0.0.0.0/0 ldap ldapserver="127.0.0.1" ldapport=${String(slapd.port)} ldapscheme="ldap" ldapbasedn="${slapd.peopleDN}" ldapbinddn="${slapd.bindDN}" ldapbindpasswd="${bindPassword}" ldapsearchattribute="uid"`;
    const rules = hba.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    assert.deepEqual(rules.slice(-3), ['host all app,postgres 127.0.0.1/32 scram-sha-256', expected, 'host all all all scram-sha-256']);
    assert.equal((await stat(join(paths.pgdata, 'pg_hba.conf'))).mode & 0o777, 0o600);
  });

  it('search+bind: a directory user logs in with psql; a wrong password and an unknown user are refused', async () => {
    assert.equal(await login('alice', alice.password), 'alice');
    await assert.rejects(login('alice', 'not-her-password'), /LDAP authentication failed for user "alice"/);
    await assert.rejects(login('carol', 'whatever'), /LDAP authentication failed for user "carol"/, 'no such entry in the directory');
    await assert.rejects(login('bob', alice.password), /LDAP authentication failed for user "bob"/, "another user's password");
  });

  it('a rotated bind password (directory and Secret both changed, with " # and spaces) keeps search+bind working, without a restart', async () => {
    const rotated = `${marker}-bind-2 "quoted" #not-a-comment, x=y`;
    await slapd.setPassword(slapd.bindDN, rotated);
    // PostgreSQL still binds with the old password: the search, hence the login, fails.
    await assert.rejects(login('alice', alice.password), /LDAP authentication failed/);
    await writeBindSecret(rotated);
    bindPassword = rotated;
    await waitHba(/ldapbindpasswd="S3NTINEL-[a-z0-9]+-bind-2 ""quoted"" #not-a-comment, x=y"/);
    assert.equal(await login('alice', alice.password), 'alice');
    assert.equal((await pgStatus()).postmasterPid, postmaster, 'applied by a reload');
  });

  it('a Secret with a line break is refused naming the Secret and key; the last good rule keeps serving', async () => {
    await writeBindSecret(`${marker}-broken\nhost all all all trust`);
    await eventually(async () => {
      const s = await pgStatus();
      return s.configurationError?.includes('secret ldap-bind: password: contains a line break or NUL') === true ? true : undefined;
    }, 30_000, 'the configuration error');
    assert.doesNotMatch(await hbaOnDisk(), /broken|trust/);
    assert.equal(await login('alice', alice.password), 'alice');
    await writeBindSecret(bindPassword);
    await eventually(async () => ((await pgStatus()).configurationError === undefined ? true : undefined), 30_000, 'the error cleared');
  });

  it('bindAsAuth (simple bind, prefix and suffix) applied live from the Cluster', async () => {
    cluster = withLdap(ldap({ bindSearchAuth: undefined, bindAsAuth: { prefix: 'uid=', suffix: `,${slapd.peopleDN}` } }));
    await writeClusterYaml(paths.configDir, cluster);
    await waitHba(/ldapprefix="uid=" ldapsuffix=",ou=people,dc=example,dc=org"/);
    assert.doesNotMatch(await hbaOnDisk(), /ldapbindpasswd/);
    assert.equal(await login('alice', alice.password), 'alice');
    await assert.rejects(login('alice', 'wrong'), /LDAP authentication failed for user "alice"/);
  });

  it('tls: true takes the StartTLS path (slapd now refuses any operation without TLS), trusting the CA through LDAPTLS_CACERT', async () => {
    cluster = withLdap(ldap());
    await writeClusterYaml(paths.configDir, cluster);
    await waitHba(/ldapsearchattribute="uid"/);
    await slapd.requireStartTls();
    await assert.rejects(login('alice', alice.password), /LDAP authentication failed/, 'without StartTLS the directory refuses the bind');
    cluster = withLdap(ldap({ tls: true }));
    await writeClusterYaml(paths.configDir, cluster);
    await waitHba(/ ldaptls=1 ldapbasedn=/);
    assert.equal(await login('alice', alice.password), 'alice');
    await assert.rejects(login('alice', 'wrong'), /LDAP authentication failed for user "alice"/);
    assert.ok(slapd.log.join('').includes('EXT oid=1.3.6.1.4.1.1466.20037'), 'slapd saw the StartTLS extended operation');
  });

  it('the bind password never appears in pgim output or PostgreSQL logs (catalogue #21, #70)', async () => {
    await writeFile(join(base, 'pgim.log'), pgim.output);
    const hits = pgim.lines.filter((line) => line.includes(marker));
    assert.deepEqual(hits, []);
    const status = await (await fetch(`${pgim.statusUrl}/pg/status`)).text();
    assert.ok(!status.includes(marker));
  });

  it("without the CA in postgres's environment, ldaptls=1 cannot verify the directory: the login is refused", async () => {
    await pgim.stop();
    pgim = new PgimProcess('run', paths, ports, [], { LDAPTLS_CACERT: '' });
    await pgim.waitReady(120_000);
    await assert.rejects(login('alice', alice.password), /LDAP authentication failed/);
    await pgim.waitForLog(/could not start LDAP TLS session/);
    assert.deepEqual(pgim.lines.filter((line) => line.includes(marker)), []);
  });
});
