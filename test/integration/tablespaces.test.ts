import { strict as assert } from 'node:assert';
import { readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { writeClusterYaml } from '../../test-kit/config.js';
import { eventually, removeTempDir } from '../../test-kit/env.js';
import { connect, killPostmaster, PgimProcess, prepareInstance, type PgimProcess as Pgim } from '../../test-kit/pgim.js';
import { startLocalCluster, type LocalCluster } from '../support/cluster.js';

const secrets = { appPassword: 'app-pw', superuserPassword: 'su-pw' };

interface TablespaceStatus {
  name: string;
  owner?: string;
  state: string;
  error?: string;
}

async function tablespacesStatus(pgim: Pgim): Promise<TablespaceStatus[] | undefined> {
  const doc = (await (await fetch(`${pgim.statusUrl}/pg/status`)).json()) as { tablespacesStatus?: TablespaceStatus[] };
  return doc.tablespacesStatus;
}

async function sql<T extends Record<string, unknown>>(port: number, text: string, database = 'app'): Promise<T[]> {
  const client = await connect(port, 'postgres', 'su-pw', database);
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}

describe('spec.tablespaces: created and owned by the primary, a folder per instance, replicas mapped (real PostgreSQL 15, files mode)', function () {
  describe('a two-instance cluster', () => {
    let cluster: LocalCluster;

    before(async function () {
      this.timeout(300_000);
      cluster = await startLocalCluster(2, {
        enableSuperuserAccess: true,
        spec: { tablespaces: [{ name: 'fast', owner: { name: 'app' }, storage: { size: '1Gi' } }, { name: 'scratch', temporary: true, owner: { name: 'app' }, storage: { size: '1Gi' } }] },
      }, secrets);
    });

    after(async function () {
      this.timeout(120_000);
      await cluster.stop();
    });

    const primary = () => cluster.instances[0]!;
    const replica = () => cluster.instances[1]!;
    const root = (n: 0 | 1) => `${cluster.instances[n]!.paths.pgdata}-tablespaces`;

    it('the primary creates each tablespace in its folder <PGDATA>-tablespaces/<name>/data with its owner; /pg/status reports them', async () => {
      const status = await eventually(async () => {
        const s = await tablespacesStatus(primary().pgim!);
        return s?.every((t) => t.state === 'reconciled') === true && s.length === 2 ? s : undefined;
      }, 60_000, 'both tablespaces reconciled');
      assert.deepEqual(status, [{ name: 'fast', owner: 'app', state: 'reconciled' }, { name: 'scratch', owner: 'app', state: 'reconciled' }]);
      const rows = await sql<{ name: string; owner: string; location: string }>(primary().ports.pgPort,
        "SELECT spcname AS name, pg_get_userbyid(spcowner) AS owner, pg_tablespace_location(oid) AS location FROM pg_tablespace WHERE spcname NOT LIKE 'pg\\_%' ORDER BY 1");
      assert.deepEqual(rows, [
        { name: 'fast', owner: 'app', location: join(root(0), 'fast', 'data') },
        { name: 'scratch', owner: 'app', location: join(root(0), 'scratch', 'data') },
      ]);
    });

    it('a table in a tablespace reaches the replica, whose copy lives in its own folder (pg_basebackup --tablespace-mapping)', async () => {
      // The application owner creates its table in its own tablespace.
      const app = await connect(primary().ports.pgPort, 'app', 'app-pw');
      try {
        await app.query('CREATE TABLE in_fast (id int, v text) TABLESPACE fast');
        await app.query("INSERT INTO in_fast SELECT g, repeat('x', 100) FROM generate_series(1, 1000) g");
      } finally {
        await app.end();
      }
      const count = await eventually(async () => {
        const rows = await sql<{ n: string }>(replica().ports.pgPort, 'SELECT count(*) AS n FROM in_fast').catch(() => []);
        return rows[0]?.n === '1000' ? rows[0].n : undefined;
      }, 60_000, 'the rows on the replica');
      assert.equal(count, '1000');
      const [location] = await sql<{ l: string }>(replica().ports.pgPort, "SELECT pg_tablespace_location(oid) AS l FROM pg_tablespace WHERE spcname = 'fast'");
      assert.equal(location?.l, join(root(1), 'fast', 'data'), "the replica's tablespace is its own folder");
      const [file] = await sql<{ path: string }>(replica().ports.pgPort, "SELECT pg_relation_filepath('in_fast') AS path");
      const link = await readlink(join(replica().paths.pgdata, ...(file?.path ?? '').split('/').slice(0, 2)));
      assert.equal(link, join(root(1), 'fast', 'data'));
      const versionDirs = await readdir(join(root(1), 'fast', 'data'));
      assert.equal(versionDirs.length, 1);
      assert.match(versionDirs[0] ?? '', /^PG_15_/);
      const replicaStatus = await eventually(async () => {
        const list = await tablespacesStatus(replica().pgim!);
        return list?.length === 2 ? list : undefined;
      }, 30_000, 'replica status');
      assert.ok(replicaStatus.every((t) => t.state === 'reconciled'), JSON.stringify(replicaStatus));
    });

    it('a temporary tablespace is in temp_tablespaces and takes the temp files of a sort (its owner may create in it)', async () => {
      const before = await sql<{ n: string }>(primary().ports.pgPort, "SELECT temp_files AS n FROM pg_stat_database WHERE datname = 'app'");
      const client = await connect(primary().ports.pgPort, 'app', 'app-pw');
      try {
        assert.equal((await client.query<{ v: string }>("SELECT current_setting('temp_tablespaces') AS v")).rows[0]?.v, 'scratch');
        await client.query("SET work_mem = '64kB'");
        await client.query('SELECT g FROM generate_series(1, 200000) g ORDER BY g DESC LIMIT 1');
      } finally {
        // A session's statistics reach pg_stat_database at its end at the latest.
        await client.end();
      }
      await eventually(async () => {
        const after = await sql<{ n: string }>(primary().ports.pgPort, "SELECT temp_files AS n FROM pg_stat_database WHERE datname = 'app'");
        return Number(after[0]?.n) > Number(before[0]?.n) ? true : undefined;
      }, 30_000, 'the sort to spill to a temp file');
      const [versionDir] = await readdir(join(root(0), 'scratch', 'data'));
      assert.ok((await readdir(join(root(0), 'scratch', 'data', versionDir ?? ''))).includes('pgsql_tmp'), 'temp files went to the scratch folder');
    });
  });

  it('a tablespace with an owner that does not exist is pending with PostgreSQL\'s reason, and created once the role exists', async function () {
    const { base, paths, ports } = await prepareInstance('tbs-owner', secrets);
    await writeClusterYaml(paths.configDir, { enableSuperuserAccess: true, smartShutdownTimeout: 1, stopDelay: 20, spec: { tablespaces: [{ name: 'orphan', owner: { name: 'nobody' }, storage: { size: '1Gi' } }] } });
    const pgim = new PgimProcess('run', paths, ports);
    try {
      await pgim.waitReady(120_000);
      const pending = await eventually(async () => (await tablespacesStatus(pgim))?.find((t) => t.state === 'pending'), 60_000, 'the pending tablespace');
      assert.deepEqual(pending, { name: 'orphan', owner: 'nobody', state: 'pending', error: 'while creating tablespace orphan: role "nobody" does not exist' });
      assert.match(pgim.output, /"tablespace":"orphan","owner":"nobody","error":"while creating tablespace orphan: role \\"nobody\\" does not exist","msg":"tablespace not reconciled"/);
      await sql(ports.pgPort, 'CREATE ROLE nobody', 'postgres');
      const done = await eventually(async () => (await tablespacesStatus(pgim))?.find((t) => t.state === 'reconciled'), 30_000, 'created on a retry');
      assert.deepEqual(done, { name: 'orphan', owner: 'nobody', state: 'reconciled' });
    } finally {
      await pgim.stop().catch(() => killPostmaster(paths.pgdata));
      await removeTempDir(base);
    }
  });
});
