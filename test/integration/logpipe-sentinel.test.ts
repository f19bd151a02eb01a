import { strict as assert } from 'node:assert';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeConfigDir } from '../../test-kit/config.js';
import { eventually, freePort, handToPostgres, makeTempDir, removeTempDir } from '../../test-kit/env.js';
import { connect, killPostmaster, PgimProcess, query, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';
import { descendants } from '../../test-kit/proc.js';
import { requireBackupParts, S3Server } from '../../test-kit/s3.js';

describe('log pipe and the secret sentinel sweep (real PostgreSQL 15)', function () {
  this.timeout(300_000);
  const marker = `S3NTINEL-${Math.random().toString(36).slice(2, 12)}`;
  const secrets = { appPassword: `${marker}-app`, superuserPassword: `${marker}-su` };
  const ldapBindPassword = `${marker}-ldap "bind"`;
  let base: string;
  let paths: PgimPaths;
  let ports: PgimPorts;
  let pgim: PgimProcess;
  let s3: S3Server;
  const httpBodies: string[] = [];

  const fetchText = async (url: string): Promise<string> => {
    const body = await (await fetch(url)).text();
    httpBodies.push(body);
    return body;
  };

  before(async function () {
    base = await makeTempDir('logpipe');
    paths = { configDir: join(base, 'config'), pgdata: join(base, 'pgdata'), runtimeDir: join(base, 'runtime') };
    ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
    // WAL archiving on, to a real S3 server whose credentials are sentinels (the sweep test also stops it for a
    // while, so the failure paths are swept too).
    requireBackupParts(this);
    s3 = await S3Server.start({ credentials: { accessKey: `${marker}-s3-ID`, secretKey: `${marker}-s3-KEY` } });
    const backup = {
      barmanObjectStore: {
        destinationPath: s3.destination('sentinel'),
        endpointURL: s3.endpointURL,
        s3Credentials: { accessKeyId: { name: 'backup-creds', key: 'ID' }, secretAccessKey: { name: 'backup-creds', key: 'KEY' } },
      },
    };
    // LDAP authentication with a sentinel bind password (the directory is never reached: a port nothing listens
    // on); app and postgres keep their passwords over 127.0.0.1 through a user rule above the LDAP rule.
    const ldap = {
      server: '127.0.0.1',
      port: await freePort(),
      bindSearchAuth: { baseDN: 'dc=example,dc=org', bindDN: 'cn=pgbind,dc=example,dc=org', bindPassword: { name: 'ldap-bind', key: 'password' }, searchAttribute: 'uid' },
    };
    const postgresql = { parameters: { shared_buffers: '16MB', max_connections: '30', log_statement: 'all' }, pg_hba: ['host all app,postgres 127.0.0.1/32 scram-sha-256'], pg_ident: [], ldap };
    await writeConfigDir(paths.configDir, { enableSuperuserAccess: true, smartShutdownTimeout: 1, spec: { backup, postgresql } }, secrets);
    await mkdir(join(paths.configDir, 'secrets', 'backup-creds'), { recursive: true });
    for (const key of ['ID', 'KEY']) await writeFile(join(paths.configDir, 'secrets', 'backup-creds', key), `${marker}-s3-${key}`);
    await mkdir(join(paths.configDir, 'secrets', 'ldap-bind'), { recursive: true });
    await writeFile(join(paths.configDir, 'secrets', 'ldap-bind', 'password'), ldapBindPassword);
    await handToPostgres(paths.configDir);
    pgim = new PgimProcess('run', paths, ports);
    await pgim.waitReady(120_000);
  });

  after(async () => {
    await pgim.stop().catch(() => killPostmaster(paths.pgdata));
    await s3.stop();
    await removeTempDir(base);
  });

  it("re-emits PostgreSQL's csvlog as JSON records with CNPG's shape", async () => {
    await query(ports.pgPort, 'app', secrets.appPassword, "SELECT 'pipe-probe-1'");
    const line = await pgim.waitForLog(/pipe-probe-1/);
    const entry = JSON.parse(line) as { logger: string; msg: string; logging_pod: string; record: Record<string, string> };
    assert.equal(entry.logger, 'postgres');
    assert.equal(entry.msg, 'record');
    assert.equal(entry.logging_pod, 'itest-1');
    assert.equal(entry.record.user_name, 'app');
    assert.equal(entry.record.error_severity, 'LOG');
    assert.match(entry.record.message ?? '', /^statement: SELECT 'pipe-probe-1'$/);
  });

  it('emits lines that are not csvlog records instead of dropping them', async () => {
    await writeFile(join(paths.runtimeDir, 'log', 'postgres.csv'), 'not,a,csv record line\n', { flag: 'a' });
    await writeFile(join(paths.runtimeDir, 'log', 'postgres'), 'raw stderr from an extension\n', { flag: 'a' });
    await pgim.waitForLog(/"msg":"not,a,csv record line"/);
    await pgim.waitForLog(/"msg":"raw stderr from an extension"/);
  });

  it('keeps every record of a 20,000-line flood, with bounded memory', async () => {
    await query(ports.pgPort, 'app', secrets.appPassword, "DO $$ BEGIN FOR i IN 1..20000 LOOP RAISE LOG 'flood-line %', i; END LOOP; END $$");
    await eventually(async () => Promise.resolve(pgim.lines.some((l) => l.includes('flood-line 20000')) ? true : undefined), 30_000, 'the last flood line');
    const flood = pgim.lines.filter((l) => l.includes('"message":"flood-line ')).length;
    assert.equal(flood, 20_000);
    const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(await readFile(`/proc/${pgim.pid}/status`, 'utf8'))?.[1]);
    assert.ok(rss < 250 * 1024, `pgim RSS ${rss} kB after the flood`);
  });

  it('never shows a secret: output, PostgreSQL log, HTTP responses, rendered files (after rotation, crash, shutdown)', async () => {
    // Rotation (..data swaps are covered by the live-config suite).
    const rotated = `${marker}-rotated`;
    await writeFile(join(paths.configDir, 'secrets', 'itest-app', 'password'), rotated);
    await eventually(async () => {
      await (await connect(ports.pgPort, 'app', rotated)).end();
      return true;
    }, 5_000, 'the rotated password');
    // A crash and an in-place restart.
    const status = JSON.parse(await fetchText(`${pgim.statusUrl}/pg/status`)) as { postmasterPid: number };
    process.kill(status.postmasterPid, 'SIGKILL');
    await pgim.waitReady();
    await eventually(async () => {
      await (await connect(ports.pgPort, 'app', rotated)).end();
      return true;
    }, 30_000, 'back after the crash');
    await s3.pause();
    // Archiving (failing: the store is down) runs `pgim wal-archive` (PostgreSQL's archive_command, which uploads
    // itself or hands the segment to the daemon) as pgim's and PostgreSQL's descendant: the credentials must not be on
    // any command line.
    await query(ports.pgPort, 'postgres', secrets.superuserPassword, 'SELECT pg_switch_wal()').catch(() => undefined);
    await query(ports.pgPort, 'postgres', secrets.superuserPassword, 'CREATE TABLE IF NOT EXISTS sweep (x int)');
    await query(ports.pgPort, 'postgres', secrets.superuserPassword, 'SELECT pg_switch_wal()');
    let sawArchiver = false;
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && !sawArchiver) {
      for (const child of await descendants(pgim.pid)) {
        const cmdline = await readFile(`/proc/${child.pid}/cmdline`, 'utf8').catch(() => '');
        assert.ok(!cmdline.includes(marker), `the command line of ${child.comm}`);
        if (cmdline.includes('wal-archive')) sawArchiver = true;
      }
    }
    assert.ok(sawArchiver, 'the archive_command ran while the sweep watched');
    await eventually(() => Promise.resolve(pgim.lines.some((l) => l.includes('WAL archiving is failing')) ? true : undefined), 60_000, 'the archive failure in the log');
    await s3.resume();
    // A login through the LDAP rule: PostgreSQL logs the matched pg_hba line (bind password included) on failure.
    await assert.rejects(connect(ports.pgPort, 'directory-user', 'x'), /LDAP authentication failed/);
    await pgim.waitForLog(/ldapbindpasswd=\*{8}/);
    for (const path of ['/healthz', '/readyz', '/startupz', '/pg/status', '/failsafe']) await fetchText(`${pgim.statusUrl}${path}`);
    await fetchText(`http://127.0.0.1:${ports.metricsPort}/metrics`);
    const exit = await pgim.stop();
    assert.equal(exit.code, 0);

    assert.ok(pgim.lines.some((l) => l.includes('"logger":"postgres"')), 'the PostgreSQL log went through pgim');
    assert.ok(!pgim.output.includes(marker), 'pgim output and the PostgreSQL log');
    for (const body of httpBodies) assert.ok(!body.includes(marker), 'an HTTP response');
    for (const name of ['postgresql.conf', 'custom.conf', 'override.conf', 'pg_hba.conf', 'pg_ident.conf']) {
      // pg_hba.conf is where the LDAP bind password must be (PostgreSQL reads it from nowhere else), 0600.
      const text = (await readFile(join(paths.pgdata, name), 'utf8')).replace(`ldapbindpasswd="${ldapBindPassword.replaceAll('"', '""')}"`, '');
      assert.ok(!text.includes(marker), name);
    }
    assert.equal((await stat(join(paths.pgdata, 'pg_hba.conf'))).mode & 0o777, 0o600);
    for (const name of await readdir(join(paths.pgdata, 'log')).catch(() => [])) {
      assert.ok(!(await readFile(join(paths.pgdata, 'log', name), 'utf8')).includes(marker), `PGDATA/log/${name}`);
    }
    // The passfile and the wal-archive settings are the places a secret is meant to be (0600, the runtime dir).
    assert.ok((await readFile(join(paths.runtimeDir, 'wal-archive', 'settings.json'), 'utf8')).includes(`${marker}-s3-KEY`));
    assert.ok((await readFile(join(paths.runtimeDir, 'pgpass'), 'utf8')).includes(rotated));
  });
});
