import { strict as assert } from 'node:assert';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeConfigDir, type TestClusterOptions } from '../../test-kit/config.js';
import { freePort, handToPostgres, makeTempDir, removeTempDir } from '../../test-kit/env.js';
import { connect, killPostmaster, PgimProcess, postmasterPid, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';

const secrets = { appPassword: 'app-pw', superuserPassword: 'su-pw' };
/** Each post-init script records itself with its transaction id: the order across databases is the xid order. */
const record = (what: string): string => `INSERT INTO ran(what) VALUES ($$${what}$$)`;
const createRan = 'CREATE TABLE ran(xid xid8 DEFAULT pg_current_xact_id(), what text)';

async function writeObject(configDir: string, kind: 'secrets' | 'configmaps', name: string, data: Record<string, string>): Promise<void> {
  await mkdir(join(configDir, kind, name), { recursive: true });
  for (const [key, value] of Object.entries(data)) await writeFile(join(configDir, kind, name, key), value);
}

describe('bootstrap.initdb: initdb options and post-init SQL, once, in CNPG order (real PostgreSQL 15, files mode)', function () {
  let base: string;
  let paths: PgimPaths;
  let ports: PgimPorts;

  beforeEach(async () => {
    base = await makeTempDir('initdb');
    paths = { configDir: join(base, 'config'), pgdata: join(base, 'pgdata'), runtimeDir: join(base, 'runtime') };
    ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
  });

  afterEach(async () => {
    await killPostmaster(paths.pgdata);
    await removeTempDir(base);
  });

  async function configure(initdb: Record<string, unknown>, extra: TestClusterOptions = {}): Promise<void> {
    await writeConfigDir(paths.configDir, { enableSuperuserAccess: true, ...extra, spec: { bootstrap: { initdb: { database: 'app', owner: 'app', ...initdb } } } }, secrets);
  }

  it('checksums, encoding, locale, ICU provider, WAL segment size and every post-init SQL kind in its database and order', async () => {
    await configure({
      dataChecksums: true,
      encoding: 'UTF8',
      locale: 'C.UTF-8',
      localeProvider: 'icu',
      icuLocale: 'en-US',
      walSegmentSize: 32,
      postInitSQL: [`${createRan}; ${record('postInitSQL[0]')}`, record('postInitSQL[1]')],
      postInitSQLRefs: { configMapRefs: [{ name: 'sql-cm', key: 'postgres.sql' }], secretRefs: [{ name: 'sql-secret', key: 'postgres.sql' }] },
      postInitTemplateSQL: [`${createRan}; ${record('postInitTemplateSQL[0]')}`],
      postInitTemplateSQLRefs: { configMapRefs: [{ name: 'sql-cm', key: 'template.sql' }] },
      postInitApplicationSQL: [`INSERT INTO ran(what) SELECT 'search_path=' || current_setting('search_path'); ${record('postInitApplicationSQL[0]')}`],
      postInitApplicationSQLRefs: { secretRefs: [{ name: 'sql-secret', key: 'app.sql' }], configMapRefs: [{ name: 'sql-cm', key: 'app.sql' }, { name: 'sql-cm', key: 'app2.sql' }] },
    });
    await writeObject(paths.configDir, 'secrets', 'sql-secret', { 'postgres.sql': record('postgres secret'), 'app.sql': record('app secret') });
    await writeObject(paths.configDir, 'configmaps', 'sql-cm', {
      'postgres.sql': record('postgres configmap'),
      'template.sql': record('template configmap'),
      'app.sql': `${record('app configmap 1')}; CREATE TABLE made_by_app_sql(id int)`,
      'app2.sql': record('app configmap 2'),
    });
    await handToPostgres(paths.configDir);
    const pgim = new PgimProcess('run', paths, ports);
    try {
      await pgim.waitReady(120_000);
      const ran = async (database: string): Promise<string[]> => {
        const client = await connect(ports.pgPort, 'postgres', 'su-pw', database);
        try {
          return (await client.query<{ what: string }>('SELECT what FROM ran ORDER BY xid::text::numeric')).rows.map((r) => r.what);
        } finally {
          await client.end();
        }
      };
      assert.deepEqual(await ran('postgres'), ['postInitSQL[0]', 'postInitSQL[1]', 'postgres secret', 'postgres configmap'], 'inline, then Secrets, then ConfigMaps');
      assert.deepEqual(await ran('template1'), ['postInitTemplateSQL[0]', 'template configmap']);
      // template1 ran before the application database was created from it: its rows came along.
      assert.deepEqual(await ran('app'), [
        'postInitTemplateSQL[0]', 'template configmap', 'search_path="$user", public', 'postInitApplicationSQL[0]', 'app secret', 'app configmap 1', 'app configmap 2',
      ]);
      const client = await connect(ports.pgPort, 'postgres', 'su-pw', 'app');
      try {
        const setting = async (name: string): Promise<string> => (await client.query<{ v: string }>(`SELECT current_setting('${name}') AS v`)).rows[0]?.v ?? '';
        assert.equal(await setting('data_checksums'), 'on');
        assert.equal(await setting('wal_segment_size'), '32MB');
        assert.equal(await setting('server_encoding'), 'UTF8');
        const { rows } = await client.query<{ datcollate: string; datctype: string; datlocprovider: string; daticulocale: string }>(
          "SELECT datcollate, datctype, datlocprovider, daticulocale FROM pg_database WHERE datname = 'app'",
        );
        assert.deepEqual(rows[0], { datcollate: 'C.UTF-8', datctype: 'C.UTF-8', datlocprovider: 'i', daticulocale: 'en-US' });
        const owner = await client.query<{ owner: string }>("SELECT tableowner AS owner FROM pg_tables WHERE tablename = 'made_by_app_sql' AND schemaname = 'public'");
        assert.equal(owner.rows[0]?.owner, 'postgres', 'the application SQL ran as the superuser, in public');
      } finally {
        await client.end();
      }
    } finally {
      await pgim.stop();
    }
    // Once: a restart runs none of it again.
    const again = new PgimProcess('run', paths, ports);
    try {
      await again.waitReady(120_000);
      const client = await connect(ports.pgPort, 'postgres', 'su-pw', 'postgres');
      try {
        assert.equal((await client.query<{ n: string }>('SELECT count(*) AS n FROM ran')).rows[0]?.n, '4');
      } finally {
        await client.end();
      }
    } finally {
      await again.stop();
    }
  });

  it('a failing post-init SQL stops the bootstrap (exit 3, the field named): PGDATA left empty, the half-made cluster moved aside, nothing started', async () => {
    await configure({ postInitSQL: ['CREATE TABLE before_failure(id int)'], postInitApplicationSQL: ['SELECT 1', 'SELECT 1/0'] });
    await handToPostgres(base);
    const pgim = new PgimProcess('run', paths, ports);
    const exit = await pgim.waitExit(120_000);
    assert.equal(exit.code, 3, pgim.output);
    assert.match(pgim.output, /spec\.bootstrap\.initdb\.postInitApplicationSQL\[1\]: post-init SQL failed: division by zero \(SQLSTATE 22012\)/);
    assert.match(pgim.output, /the bootstrap failed: its half-made cluster was moved aside; PGDATA is empty/);
    assert.deepEqual(await readdir(paths.pgdata), [], 'PGDATA is empty');
    assert.equal(await postmasterPid(paths.pgdata), undefined);
    const aside = (await readdir(base)).filter((name) => name.startsWith('pgdata_'));
    assert.equal(aside.length, 1, 'the half-made cluster is kept aside');
    assert.equal(await postmasterPid(join(base, aside[0] ?? '')), undefined, 'no postmaster left in it');
    assert.deepEqual((await readdir(base)).filter((name) => name.includes('pgim-bootstrap')), [], 'no bootstrap marker left');
    assert.doesNotMatch(pgim.output, /"msg":"pgim starting"[\s\S]*"msg":"postgres is accepting/i);
  });

  it('a SQL error in a Secret is reported by SQLSTATE only, never its message', async () => {
    await configure({ postInitSQLRefs: { secretRefs: [{ name: 'sql-secret', key: 'bad.sql' }] } });
    await writeObject(paths.configDir, 'secrets', 'sql-secret', { 'bad.sql': "ALTER ROLE app PASSWORD 's3cr3t-value' WHATEVER" });
    await handToPostgres(base);
    const pgim = new PgimProcess('run', paths, ports);
    assert.equal((await pgim.waitExit(120_000)).code, 3, pgim.output);
    assert.match(pgim.output, /secret sql-secret key bad\.sql: spec\.bootstrap\.initdb\.postInitSQLRefs\.secretRefs\[0\]: post-init SQL failed: SQLSTATE 42601/);
    assert.doesNotMatch(pgim.output, /s3cr3t-value|WHATEVER/);
  });

  it('what PostgreSQL 15 cannot do is refused before initdb, naming the field (exit 3, PGDATA untouched)', async () => {
    for (const [initdb, field] of [
      [{ localeProvider: 'builtin', builtinLocale: 'C.UTF-8' }, /spec\.bootstrap\.initdb\.builtinLocale: needs PostgreSQL 17 or later; the server binaries are PostgreSQL 15/],
      [{ localeProvider: 'icu', icuLocale: 'en-US', icuRules: '&a < b' }, /spec\.bootstrap\.initdb\.icuRules: needs PostgreSQL 16 or later/],
    ] as const) {
      await configure(initdb);
      await handToPostgres(base);
      const pgim = new PgimProcess('init', paths, ports);
      assert.equal((await pgim.waitExit(60_000)).code, 3, pgim.output);
      assert.match(pgim.output, field);
      assert.deepEqual(await readdir(paths.pgdata).catch(() => []), []);
    }
  });

  it('a missing post-init Secret or key stops the bootstrap before initdb', async () => {
    await configure({ postInitTemplateSQLRefs: { configMapRefs: [{ name: 'nowhere', key: 'x.sql' }] } });
    await handToPostgres(base);
    const pgim = new PgimProcess('init', paths, ports);
    assert.equal((await pgim.waitExit(60_000)).code, 3, pgim.output);
    assert.match(pgim.output, /configmap nowhere: does not exist \(spec\.bootstrap\.initdb\.postInitTemplateSQLRefs\.configMapRefs\[0\]\)/);
    assert.deepEqual(await readdir(paths.pgdata).catch(() => []), []);
  });
});
