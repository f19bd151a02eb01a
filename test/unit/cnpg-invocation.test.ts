import { strict as assert } from 'node:assert';
import { shellSplit, translateCnpgInvocation, type CnpgTranslation } from '../../src/options/cnpg-invocation.js';

/** CNPG's pod and Job environment (pkg/specs CreatePodEnvConfig). */
const podEnv = { PGDATA: '/var/lib/postgresql/data/pgdata', POD_NAME: 'demo-2', NAMESPACE: 'default', CLUSTER_NAME: 'demo', PGPORT: '5432', PGHOST: '/controller/run' };

function pgim(t: CnpgTranslation): Extract<CnpgTranslation, { kind: 'pgim' }> {
  if (t.kind !== 'pgim') assert.fail(JSON.stringify(t));
  return t;
}

describe("CloudNativePG's command lines mapped onto pgim's (src/options/cnpg-invocation.ts)", () => {
  it('instance run --status-port-tls --log-level=info (the pod template) -> pgim run --status-tls, log level info', () => {
    const t = pgim(translateCnpgInvocation(['instance', 'run', '--status-port-tls', '--log-level=info'], podEnv));
    assert.deepEqual(t.argv, ['run', '--pod-name', 'demo-2', '--status-tls']);
    assert.deepEqual(t.env, { PGIM_LOG_LEVEL: 'info', POD_NAME: 'demo-2' });
    const metrics = pgim(translateCnpgInvocation(['instance', 'run', '--metrics-port-tls', '--log-level', 'warning', '--pg-data', '/d'], podEnv));
    assert.deepEqual(metrics.argv, ['run', '--pgdata', '/d', '--pod-name', 'demo-2', '--metrics-tls']);
    assert.equal(metrics.env.PGIM_LOG_LEVEL, 'warn', "CNPG's warning is pino's warn");
  });

  it("instance init: the Job's POD_NAME (<instance>-initdb) names the instance; initdb flags are checked and passed on", () => {
    const t = pgim(
      translateCnpgInvocation(
        ['instance', 'init', '--initdb-flags', "-k '--encoding=UTF8' --lc-collate=C --locale-provider=icu '--icu-locale=en US'", '--app-db-name', 'app', '--app-user', 'app'],
        { ...podEnv, POD_NAME: 'demo-1-initdb' },
      ),
    );
    assert.deepEqual(t.argv, ['init', '--pod-name', 'demo-1']);
    assert.deepEqual(t.initdbFlags, ['--data-checksums', '--encoding=UTF8', '--lc-collate=C', '--locale-provider=icu', '--icu-locale=en US']);
    assert.deepEqual(t.expectations, { clusterName: 'demo', appDatabase: 'app', appUser: 'app', parentNode: undefined });
    assert.deepEqual(pgim(translateCnpgInvocation(['instance', 'init', '--initdb-flags', ''], podEnv)).initdbFlags, []);
    // bootstrap.initdb.options are passed as CNPG passes them: two-word forms become one option.
    assert.deepEqual(pgim(translateCnpgInvocation(['instance', 'init', '--initdb-flags', '-E UTF8 --locale C.UTF-8 -k'], podEnv)).initdbFlags, ['--encoding=UTF8', '--locale=C.UTF-8', '--data-checksums']);
  });

  it('instance init: the post-init SQL flags are accepted (pgim reads the Cluster) and the refs folders passed on', () => {
    const t = pgim(
      translateCnpgInvocation(
        ['instance', 'init', '--post-init-sql', "'CREATE EXTENSION x'", '--post-init-sql-refs-folder', '/etc/post-init-sql-refs', '--post-init-application-sql-refs-folder', '/etc/app-refs'],
        podEnv,
      ),
    );
    assert.deepEqual(t.postInitRefsFolders, { postgres: '/etc/post-init-sql-refs', application: '/etc/app-refs' });
  });

  it('instance join --parent-node <cluster>-rw: the Job POD_NAME (<instance>-join) names the instance', () => {
    const t = pgim(translateCnpgInvocation(['instance', 'join', '--parent-node', 'demo-rw', '--log-level=debug'], { ...podEnv, POD_NAME: 'demo-2-join' }));
    assert.deepEqual(t.argv, ['join', '--pod-name', 'demo-2']);
    assert.equal(t.expectations.parentNode, 'demo-rw');
  });

  it('instance restore: the Job POD_NAME (<instance>-full-recovery) names the instance; pgim restore runs', () => {
    const t = pgim(translateCnpgInvocation(['instance', 'restore', '--pg-data', '/var/lib/postgresql/data/pgdata'], { ...podEnv, POD_NAME: 'demo-1-full-recovery' }));
    assert.deepEqual(t.argv, ['restore', '--pgdata', '/var/lib/postgresql/data/pgdata', '--pod-name', 'demo-1']);
    assert.equal(translateCnpgInvocation(['instance', 'restore', '--pg-wal', '/w'], podEnv).kind, 'not-implemented');
  });

  it('instance pgbasebackup is pgim init (which clones a bootstrap.pg_basebackup manifest); the Job suffix goes', () => {
    const t = pgim(translateCnpgInvocation(['instance', 'pgbasebackup', '--pg-data', '/var/lib/postgresql/data/pgdata'], { ...podEnv, POD_NAME: 'demo-1-pgbasebackup' }));
    assert.deepEqual(t.argv, ['init', '--pgdata', '/var/lib/postgresql/data/pgdata', '--pod-name', 'demo-1']);
  });

  it('refuses with exit 3 (not implemented yet, naming it) what pgim cannot do, never something else', () => {
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['instance', 'restoresnapshot', '--immediate'], podEnv, /restoresnapshot/],
      [['instance', 'run', '--pprof-server'], podEnv, /--pprof-server/],
      [['instance', 'init', '--pg-wal', '/var/lib/postgresql/wal/pg_wal'], podEnv, /--pg-wal is not implemented yet/],
      [['instance', 'init', '--initdb-flags', '--auth=trust'], podEnv, /"--auth=trust" is not an initdb option pgim passes on/],
      [['instance', 'init', '--initdb-flags', '-X /wal'], podEnv, /"-X" is not an initdb option pgim passes on/],
      [['instance', 'init', '--initdb-flags', '--no-clean'], podEnv, /"--no-clean"/],
      [['instance', 'join', '--parent-node', 'other-rw'], podEnv, /--parent-node other-rw: pgim clones the cluster's current primary \(demo-rw\)/],
      [['instance', 'run', '--log-destination', '/tmp/x'], podEnv, /--log-destination is not implemented yet/],
      [['instance', 'run'], { ...podEnv, CNPG_STANDBY_TCP_USER_TIMEOUT: '1000' }, /CNPG_STANDBY_TCP_USER_TIMEOUT=1000/],
    ];
    for (const [argv, env, message] of cases) {
      const t = translateCnpgInvocation(argv, env);
      assert.equal(t.kind, 'not-implemented', argv.join(' '));
      assert.match((t as { message: string }).message, message);
    }
    // CNPG's default tcp_user_timeout is pgim's: accepted.
    assert.equal(translateCnpgInvocation(['instance', 'run'], { ...podEnv, CNPG_STANDBY_TCP_USER_TIMEOUT: '5000' }).kind, 'pgim');
  });

  it('usage errors (exit 2) for unknown flags, subcommands and bad values', () => {
    for (const argv of [['instance'], ['instance', 'bogus'], ['instance', 'run', '--bogus'], ['instance', 'run', '--log-level=loud'], ['instance', 'join'], ['instance', 'init', '--parent-node', 'x-rw'], ['instance', 'run', 'extra']]) {
      assert.equal(translateCnpgInvocation(argv, podEnv).kind, 'usage', argv.join(' '));
    }
    assert.equal(translateCnpgInvocation(['instance', 'init', '--initdb-flags', "'unterminated"], podEnv).kind, 'usage');
  });

  it('instance status', () => {
    assert.deepEqual(translateCnpgInvocation(['instance', 'status'], podEnv), { kind: 'status' });
  });

  it('shellSplit reads what Go shellquote.Join writes', () => {
    assert.deepEqual(shellSplit(`-k '--icu-rules=&a < b' "x\\"y" a\\ b ''`), ['-k', '--icu-rules=&a < b', 'x"y', 'a b', '']);
    assert.deepEqual(shellSplit('  '), []);
    assert.throws(() => shellSplit('"open'), /unterminated double quote/);
  });
});
