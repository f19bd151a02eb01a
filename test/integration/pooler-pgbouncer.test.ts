import { strict as assert } from 'node:assert';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { writeConfigDir } from '../../test-kit/config.js';
import { eventually, freePort, handToPostgres, isRoot, makeTempDir, postgresUser, removeTempDir } from '../../test-kit/env.js';
import { connect, killPostmaster, pgimEntry, PgimProcess, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';

const pgbouncerBin = process.env.PGIM_PGBOUNCER ?? '/usr/sbin/pgbouncer';

/** PgBouncer from Debian: installed when missing and running as root (scripts/install-deps.sh installs it too). */
function havePgBouncer(): boolean {
  const has = (): boolean => spawnSync(pgbouncerBin, ['--version'], { stdio: 'ignore' }).status === 0;
  if (has()) return true;
  if (!isRoot) return false;
  execFileSync('sh', ['-c', 'apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends pgbouncer >/dev/null'], { stdio: 'inherit' });
  return has();
}

/**
 * Issue 19, item 8: what CNPG's instance manager owns of a PgBouncer Pooler, tested with a real PgBouncer. A Pooler
 * manifest for the cluster appears in the config folder (files mode); pgim creates `cnpg_pooler_pgbouncer` and
 * `public.user_search` with CNPG's SQL; PgBouncer logs in as `cnpg_pooler_pgbouncer` with a client certificate
 * (pg_hba's fixed cert rule), over TLS 1.3 verified against the cluster's CA, and authenticates the app user with
 * SCRAM through `auth_query` — no password of the app user in PgBouncer's configuration.
 */
describe('pooler integration: cnpg_pooler_pgbouncer and user_search for a real PgBouncer (files mode, TLS)', function () {
  this.timeout(180_000);
  const appPassword = 'app-pooler-pw';
  const superPassword = 'super-pooler-pw';
  let base: string | undefined;
  let paths: PgimPaths;
  let ports: PgimPorts;
  let pgim: PgimProcess | undefined;
  let bouncer: ChildProcess | undefined;
  let bouncerPort = 0;
  const bouncerLog: string[] = [];

  const superuser = async <T extends pg.QueryResultRow>(sql: string): Promise<T[]> => {
    const client = await connect(ports.pgPort, 'postgres', superPassword, 'postgres');
    try {
      return (await client.query<T>(sql)).rows;
    } finally {
      await client.end();
    }
  };

  before(async function () {
    if (!havePgBouncer()) {
      if (process.env.CI === 'true') throw new Error('pgbouncer is missing under CI: install the Debian package pgbouncer');
      console.warn('      SKIPPED LOUDLY: pgbouncer missing and not root (apt-get install pgbouncer)');
      this.skip();
    }
    base = await makeTempDir('pooler');
    paths = { configDir: join(base, 'config'), pgdata: join(base, 'pgdata'), runtimeDir: join(base, 'runtime') };
    ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
    await writeConfigDir(paths.configDir, { enableSuperuserAccess: true }, { appPassword, superuserPassword: superPassword });
    execFileSync(process.execPath, [pgimEntry, 'certs', '--cluster', 'itest', '--instances', '1', '--hosts', '127.0.0.1', '--out', join(paths.configDir, 'secrets')], { stdio: 'ignore' });
    await handToPostgres(paths.configDir);
    const started = new PgimProcess('run', paths, ports);
    pgim = started;
    await started.waitReady();
  });

  after(async () => {
    bouncer?.kill('SIGTERM');
    if (pgim !== undefined) {
      const exit = await pgim.stop().catch(() => undefined);
      if (!exit) await killPostmaster(paths.pgdata);
    }
    if (base !== undefined) await removeTempDir(base);
  });

  it('creates nothing while no Pooler needs it', async () => {
    const rows = await superuser<{ role: boolean; fn: boolean }>(
      "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cnpg_pooler_pgbouncer') AS role, EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'user_search') AS fn",
    );
    assert.deepEqual(rows[0], { role: false, fn: false });
  });

  it("creates the role and CNPG's user_search when a Pooler manifest for the cluster appears", async () => {
    await mkdir(join(paths.configDir, 'poolers'), { recursive: true });
    const pooler = { apiVersion: 'postgresql.cnpg.io/v1', kind: 'Pooler', metadata: { name: 'itest-pooler-rw' }, spec: { cluster: { name: 'itest' }, type: 'rw', pgbouncer: { poolMode: 'session' } } };
    await writeFile(join(paths.configDir, 'poolers', 'itest-pooler-rw.yaml'), stringify(pooler));
    await handToPostgres(join(paths.configDir, 'poolers'));
    await pgim!.waitForLog(/pooler integration created/, 30_000);
    const [fn] = await superuser<{ src: string; definer: boolean; config: string[]; acl: string }>(
      "SELECT prosrc AS src, prosecdef AS definer, proconfig AS config, proacl::text AS acl FROM pg_proc WHERE proname = 'user_search' AND pronamespace = 'public'::regnamespace",
    );
    assert.equal(fn?.src, 'SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename=$1;');
    assert.equal(fn.definer, true);
    assert.deepEqual(fn.config, ['search_path=pg_catalog, pg_temp']);
    assert.match(fn.acl, /cnpg_pooler_pgbouncer=X\//);
    assert.doesNotMatch(fn.acl, /(^|[{,])=X\//, 'PUBLIC may not execute it');
    const [role] = await superuser<{ login: boolean; connect: boolean }>(
      "SELECT rolcanlogin AS login, has_database_privilege('cnpg_pooler_pgbouncer', 'postgres', 'CONNECT') AS connect FROM pg_roles WHERE rolname = 'cnpg_pooler_pgbouncer'",
    );
    assert.deepEqual(role, { login: true, connect: true });
  });

  it('lets a real PgBouncer authenticate the app user through auth_query, over TLS with a client certificate', async () => {
    const dir = join(base!, 'pgbouncer');
    await mkdir(dir, { recursive: true });
    const secrets = join(paths.configDir, 'secrets');
    // The pooler's client certificate, signed by the cluster's CA: CNPG's operator issues the same one.
    execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=cnpg_pooler_pgbouncer', '-keyout', join(dir, 'pooler.key'), '-out', join(dir, 'pooler.csr')], { stdio: 'ignore' });
    execFileSync('openssl', ['x509', '-req', '-in', join(dir, 'pooler.csr'), '-CA', join(secrets, 'itest-ca', 'ca.crt'), '-CAkey', join(secrets, 'itest-ca', 'ca.key'), '-CAcreateserial', '-days', '2', '-out', join(dir, 'pooler.crt')], { stdio: 'ignore' });
    bouncerPort = await freePort();
    // PgBouncer 1.18 (Debian 12) has no auth_dbname (1.20): auth_query runs in the client's database, so the app user
    // connects to `postgres`, where CNPG creates user_search (CNPG's config sets auth_dbname = postgres).
    await writeFile(
      join(dir, 'pgbouncer.ini'),
      `[databases]
postgres = host=127.0.0.1 port=${ports.pgPort} dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${bouncerPort}
unix_socket_dir =
auth_type = scram-sha-256
auth_user = cnpg_pooler_pgbouncer
auth_query = SELECT usename, passwd FROM public.user_search($1)
pool_mode = session
server_tls_sslmode = verify-ca
server_tls_protocols = tlsv1.3
server_tls_ca_file = ${join(secrets, 'itest-ca', 'ca.crt')}
server_tls_cert_file = ${join(dir, 'pooler.crt')}
server_tls_key_file = ${join(dir, 'pooler.key')}
client_tls_sslmode = require
client_tls_protocols = tlsv1.3
client_tls_cert_file = ${join(secrets, 'itest-server', 'tls.crt')}
client_tls_key_file = ${join(secrets, 'itest-server', 'tls.key')}
logfile = ${join(dir, 'pgbouncer.log')}
pidfile = ${join(dir, 'pgbouncer.pid')}
`,
    );
    await handToPostgres(dir);
    await handToPostgres(secrets);
    bouncer = spawn(pgbouncerBin, [...(isRoot ? ['-u', postgresUser] : []), join(dir, 'pgbouncer.ini')], { stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [bouncer.stdout, bouncer.stderr]) stream?.on('data', (chunk: Buffer) => bouncerLog.push(chunk.toString()));
    const connectApp = async (password: string): Promise<string> => {
      const client = new pg.Client({ host: '127.0.0.1', port: bouncerPort, user: 'app', password, database: 'postgres', ssl: { rejectUnauthorized: false, minVersion: 'TLSv1.3' } });
      await client.connect();
      try {
        const { rows } = await client.query<{ u: string }>('SELECT current_user AS u');
        return rows[0]?.u ?? '';
      } finally {
        await client.end();
      }
    };
    const user = await eventually(async () => connectApp(appPassword).catch(() => undefined), 30_000, `app through PgBouncer (${bouncerLog.join('')})`);
    assert.equal(user, 'app');
    await assert.rejects(connectApp('wrong-password'), /password authentication failed|SASL authentication failed/);
    // PgBouncer's own server connections are TLS 1.3 sessions of cnpg_pooler_pgbouncer and app, authenticated by cert.
    const sessions = await superuser<{ usename: string; ssl: boolean; version: string }>(
      "SELECT a.usename, s.ssl, s.version FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.usename IN ('app', 'cnpg_pooler_pgbouncer') AND a.client_addr IS NOT NULL",
    );
    assert.ok(sessions.some((s) => s.usename === 'app'), JSON.stringify(sessions));
    for (const s of sessions) assert.deepEqual([s.ssl, s.version], [true, 'TLSv1.3'], JSON.stringify(s));
  });
});
