import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { writeClusterYaml, writeConfigDir, type TestClusterOptions } from '../../test-kit/config.js';
import { eventually, freePort, handToPostgres, makeTempDir, removeTempDir } from '../../test-kit/env.js';
import { connect, killPostmaster, pgimEntry, PgimProcess, query, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';

interface ManagedRolesStatus {
  byStatus?: Record<string, string[]>;
  cannotReconcile?: Record<string, string[]>;
  passwordStatus?: Record<string, { transactionID?: number; resourceVersion?: string }>;
}

interface AuthRow {
  rolcanlogin: boolean;
  rolconnlimit: number;
  rolcreatedb: boolean;
  rolinherit: boolean;
  rolpassword: string | null;
  validuntil: string | null;
  comment: string | null;
  inroles: string[] | null;
  xmin: string;
}

/**
 * Issue 19, item 1: spec.managed.roles on a real PostgreSQL 15 in files mode: roles created, altered, dropped as
 * CNPG's reconciler does, passwords as SCRAM verifiers computed by pgim (each Secret version once), drift made by
 * hand reverted by the periodic pass, CNPG's status in /pg/status and `pgim status`, and no password in any log.
 */
describe('managed roles: spec.managed.roles on the primary (real PostgreSQL 15, files mode)', function () {
  this.timeout(240_000);
  const superPassword = 'super-roles-pw';
  let alicePassword = `alice-first-${Math.random().toString(36).slice(2, 10)}`;
  const handPassword = `hand-set-${Math.random().toString(36).slice(2, 10)}`;
  // The one set by hand is logged by PostgreSQL itself (log_statement = all): not pgim's to hide.
  const passwords = [alicePassword];
  let base: string;
  let paths: PgimPaths;
  let ports: PgimPorts;
  let pgim: PgimProcess;
  let cluster: TestClusterOptions;

  const status = async (): Promise<ManagedRolesStatus | undefined> => {
    const doc = (await (await fetch(`${pgim.statusUrl}/pg/status`)).json()) as { managedRolesStatus?: ManagedRolesStatus };
    return doc.managedRolesStatus;
  };
  const su = <T extends object>(sql: string, database = 'postgres'): Promise<T[]> =>
    connect(ports.pgPort, 'postgres', superPassword, database).then(async (client) => {
      try {
        return (await client.query<T & Record<string, unknown>>(sql)).rows;
      } finally {
        await client.end();
      }
    });
  const authRow = async (role: string): Promise<AuthRow | undefined> =>
    (
      await su<AuthRow>(`SELECT rolcanlogin, rolconnlimit, rolcreatedb, rolinherit, rolpassword, to_char(rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS validuntil,
        pg_catalog.shobj_description(a.oid, 'pg_authid') AS comment, a.xmin::text AS xmin,
        (SELECT array_agg(r.rolname::text ORDER BY r.rolname) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE m.member = a.oid) AS inroles
        FROM pg_authid a WHERE rolname = '${role}'`)
    )[0];
  const canLogIn = async (user: string, password: string): Promise<boolean> => {
    try {
      await query(ports.pgPort, user, password, 'SELECT 1');
      return true;
    } catch {
      return false;
    }
  };
  const writeSecret = async (name: string, username: string, password: string): Promise<void> => {
    const dir = join(paths.configDir, 'secrets', name);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'username'), username);
    await writeFile(join(dir, 'password'), password);
    await handToPostgres(dir);
  };
  const roles = (list: unknown[]): TestClusterOptions => ({ ...cluster, spec: { managed: { roles: list } } });
  const alice = { name: 'alice', login: true, createdb: true, connectionLimit: 5, comment: 'managed by pgim', inRoles: ['pg_monitor', 'readers'], validUntil: '2035-06-01T12:00:00Z', passwordSecret: { name: 'alice-pw' } };

  before(async () => {
    base = await makeTempDir('managed-roles');
    paths = { configDir: join(base, 'config'), pgdata: join(base, 'pgdata'), runtimeDir: join(base, 'runtime') };
    ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
    // Every statement logged: a verifier or password in a statement would show in PostgreSQL's log (pgim's output).
    cluster = { enableSuperuserAccess: true, parameters: { log_statement: 'all' } };
    await writeConfigDir(paths.configDir, roles([{ name: 'readers' }, alice, { name: 'bob', disablePassword: true, inherit: false }]), { appPassword: 'app-roles-pw', superuserPassword: superPassword });
    await writeSecret('alice-pw', 'alice', alicePassword);
    await handToPostgres(paths.configDir);
    pgim = new PgimProcess('run', paths, ports);
    await pgim.waitReady();
  });

  after(async () => {
    const exit = await pgim.stop().catch(() => undefined);
    if (!exit) await killPostmaster(paths.pgdata);
    await removeTempDir(base);
  });

  it('creates the roles with every attribute, membership, comment, expiry and a SCRAM verifier pgim computed', async () => {
    const state = await eventually(async () => {
      const s = await status();
      return s?.byStatus?.reconciled?.includes('alice') === true && s.byStatus.reconciled.includes('bob') ? s : undefined;
    }, 60_000, 'alice and bob reconciled');
    const row = await authRow('alice');
    assert.ok(row);
    assert.equal(row.rolcanlogin, true);
    assert.equal(row.rolcreatedb, true);
    assert.equal(row.rolconnlimit, 5);
    assert.equal(row.comment, 'managed by pgim');
    assert.deepEqual(row.inroles, ['pg_monitor', 'readers']);
    assert.match(row.validuntil ?? '', /^2035-06-01 12:00:00$/);
    assert.match(row.rolpassword ?? '', /^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/);
    assert.equal(await canLogIn('alice', alicePassword), true);
    const bob = await authRow('bob');
    assert.equal(bob?.rolcanlogin, false);
    assert.equal(bob.rolinherit, false);
    assert.equal(bob.rolpassword, null);
    // CNPG's status: every role of pg_authid classified; a password version and the transaction that applied it.
    assert.ok(state.byStatus?.reserved?.includes('postgres') === true && state.byStatus.reserved.includes('streaming_replica'));
    assert.ok(state.byStatus['not-managed']?.includes('app') === true);
    assert.equal(state.passwordStatus?.alice?.transactionID, Number(row.xmin));
    assert.match(state.passwordStatus.alice.resourceVersion ?? '', /^[0-9a-f]{16}$/);
    assert.equal(state.cannotReconcile, undefined);
  });

  it('`pgim status` shows the roles by status', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [pgimEntry, 'status', '--url', pgim.statusUrl]);
    assert.match(stdout, /Roles reconciled\s+alice, bob, readers/);
    assert.match(stdout, /Roles reserved\s+.*postgres/);
  });

  it('reverts drift made by hand in SQL at the next periodic pass (attributes, password, membership, comment)', async () => {
    await su(`ALTER ROLE alice NOLOGIN NOCREATEDB CONNECTION LIMIT 1 VALID UNTIL 'infinity'; ALTER ROLE alice PASSWORD '${handPassword}';
      REVOKE readers FROM alice; GRANT pg_read_all_data TO alice; COMMENT ON ROLE alice IS 'edited'; ALTER ROLE bob LOGIN`);
    // No file changes: only the periodic pass can see this.
    await eventually(async () => {
      const row = await authRow('alice');
      const bob = await authRow('bob');
      return row?.rolcanlogin === true && row.rolconnlimit === 5 && row.comment === 'managed by pgim' && row.inroles?.join() === 'pg_monitor,readers' && bob?.rolcanlogin === false ? row : undefined;
    }, 60_000, 'alice and bob back as the spec says');
    const row = await authRow('alice');
    assert.equal(row?.rolcreatedb, true);
    assert.match(row.validuntil ?? '', /^2035-06-01 12:00:00$/);
    assert.equal(await canLogIn('alice', handPassword), false, 'the password set by hand is replaced');
    assert.equal(await canLogIn('alice', alicePassword), true);
  });

  it('applies a rotated Secret once: the new password works, the old one not, and later passes leave the row alone', async () => {
    const previous = (await status())?.passwordStatus?.alice?.resourceVersion;
    alicePassword = `alice-second-${Math.random().toString(36).slice(2, 10)}`;
    passwords.push(alicePassword);
    await writeSecret('alice-pw', 'alice', alicePassword);
    await eventually(async () => ((await canLogIn('alice', alicePassword)) ? true : undefined), 30_000, 'the rotated password');
    assert.equal(await canLogIn('alice', passwords[0] ?? ''), false);
    const applied = await eventually(async () => {
      const s = await status();
      return s?.passwordStatus?.alice?.resourceVersion !== previous ? s?.passwordStatus?.alice : undefined;
    }, 30_000, 'a new password version in status');
    const xmin = (await authRow('alice'))?.xmin;
    assert.equal(applied.transactionID, Number(xmin));
    // Two periodic passes later (10 s each) the row is the one the rotation wrote: applied once.
    const reconciledLines = pgim.lines.filter((l) => l.includes('"managed roles reconciled"')).length;
    await new Promise((resolve) => setTimeout(resolve, 21_000));
    assert.equal((await authRow('alice'))?.xmin, xmin, 'no pass rewrote the password');
    assert.equal(pgim.lines.filter((l) => l.includes('"managed roles reconciled"')).length, reconciledLines);
  });

  it("reports what cannot be reconciled with CNPG's reasons, and drops roles marked absent", async () => {
    await su('CREATE ROLE dave; CREATE ROLE gone');
    await su('CREATE TABLE public.owned_by_dave (x int); ALTER TABLE public.owned_by_dave OWNER TO dave', 'app');
    cluster = roles([{ name: 'readers' }, alice, { name: 'bob', disablePassword: true, inherit: false }, { name: 'dave', ensure: 'absent' }, { name: 'gone', ensure: 'absent' }, { name: 'erin', login: true, passwordSecret: { name: 'erin-pw' } }, { name: 'frank', inRoles: ['no_such_role'] }]);
    await writeClusterYaml(paths.configDir, cluster);
    const state = await eventually(async () => {
      const s = await status();
      return s?.cannotReconcile?.dave !== undefined && s.cannotReconcile.erin !== undefined && s.cannotReconcile.frank !== undefined ? s : undefined;
    }, 60_000, 'dave, erin and frank in cannotReconcile');
    assert.deepEqual(state.cannotReconcile?.dave, ['could not perform DELETE on role dave: 1 object in database app']);
    assert.deepEqual(state.cannotReconcile.erin, ['failed to get password secret erin-pw: not found']);
    assert.deepEqual(state.cannotReconcile.frank, ['could not perform CREATE on role frank: role "no_such_role" does not exist']);
    assert.equal(await authRow('gone'), undefined, 'gone is dropped');
    assert.ok(state.byStatus?.['pending-reconciliation']?.includes('dave') === true);
    // The Secret arrives: erin is created with its password, without any other change.
    await writeSecret('erin-pw', 'erin', 'erin-pw-1');
    passwords.push('erin-pw-1');
    await eventually(async () => ((await canLogIn('erin', 'erin-pw-1')) ? true : undefined), 30_000, 'erin logs in');
    await eventually(async () => ((await status())?.cannotReconcile?.erin === undefined ? true : undefined), 30_000, 'erin reconciled');
    // A Secret whose username names another role is refused (CNPG's check).
    await writeSecret('erin-pw', 'mallory', 'erin-pw-2');
    passwords.push('erin-pw-2');
    const mismatch = await eventually(async () => (await status())?.cannotReconcile?.erin, 30_000, 'the username mismatch');
    assert.deepEqual(mismatch, ['the username in secret "erin-pw" does not match role "erin"']);
    assert.equal(await canLogIn('erin', 'erin-pw-1'), true, 'the last good password stays');
    await rm(join(paths.configDir, 'secrets', 'erin-pw'), { recursive: true });
  });

  it("refuses a reserved role with CNPG's reason and keeps running on the last good configuration", async () => {
    const pid = pgim.pid;
    await writeClusterYaml(paths.configDir, roles([{ name: 'streaming_replica', login: true }]));
    const error = await eventually(async () => {
      const doc = (await (await fetch(`${pgim.statusUrl}/pg/status`)).json()) as { configurationError?: string };
      return doc.configurationError;
    }, 30_000, 'a configuration error');
    assert.match(error, /spec\.managed\.roles\[0\]\.name: This role is reserved for operator use: streaming_replica/);
    assert.equal(pgim.pid, pid);
    assert.equal((await authRow('alice'))?.rolcanlogin, true);
    await writeClusterYaml(paths.configDir, cluster);
  });

  it('cnpg.io/reloadedAt (kubectl cnpg reload): reloads PostgreSQL and sets every password again from its Secret, no restart (issue 19, item 7)', async () => {
    const doc = async (): Promise<{ postmasterPid: number }> => (await (await fetch(`${pgim.statusUrl}/pg/status`)).json()) as { postmasterPid: number };
    const pid = (await doc()).postmasterPid;
    const loadTime = async (): Promise<string> => (await su<{ t: string }>('SELECT pg_conf_load_time()::text AS t'))[0]?.t ?? '';
    const loadedBefore = await loadTime();
    // A password changed behind pgim's back: only a re-read of every Secret puts it back (pgim applies each version once).
    await su("ALTER ROLE app PASSWORD 'changed-by-hand'");
    assert.equal(await canLogIn('app', 'app-roles-pw'), false);
    await writeClusterYaml(paths.configDir, { ...cluster, annotations: { 'cnpg.io/reloadedAt': new Date().toISOString() } });
    await eventually(async () => ((await canLogIn('app', 'app-roles-pw')) ? true : undefined), 30_000, "the app owner's password from its Secret");
    await pgim.waitForLog(/reload requested \(cnpg\.io\/reloadedAt\)/, 10_000);
    assert.notEqual(await loadTime(), loadedBefore, 'PostgreSQL reloaded (and with it its certificate files)');
    assert.equal((await doc()).postmasterPid, pid, 'reloaded, not restarted');
  });

  it('never shows a password or verifier in pgim output or PostgreSQL log lines (log_statement = all)', async () => {
    const verifier = (await authRow('alice'))?.rolpassword ?? 'missing';
    const secretsSeen = [...passwords, verifier, verifier.split('$')[2] ?? 'missing'];
    for (const secret of secretsSeen) assert.ok(!pgim.output.includes(secret), `a secret value appears in the output`);
    assert.ok(pgim.output.includes('ALTER ROLE alice NOLOGIN'), 'statements are logged (the sweep would see a password)');
    const doc = await (await fetch(`${pgim.statusUrl}/pg/status`)).text();
    for (const secret of secretsSeen) assert.ok(!doc.includes(secret), 'a secret value appears in /pg/status');
  });
});
