import { strict as assert } from 'node:assert';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeClusterYaml, writeConfigDir, type TestClusterOptions } from '../../test-kit/config.js';
import { eventually, freePort, handToPostgres, makeTempDir, removeTempDir } from '../../test-kit/env.js';
import { killPostmaster, PgimProcess, query, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';

const recovery: TestClusterOptions = { spec: { bootstrap: { recovery: { source: 'origin' } }, externalClusters: [{ name: 'origin', connectionParameters: { host: 'origin' } }] } };
const ignoreAnnotation = 'pgim.io/ignoreUnsupportedFields';

/** Files in PGDATA; a missing folder is empty. */
async function pgdataFiles(pgdata: string): Promise<string[]> {
  return readdir(pgdata).catch(() => []);
}

describe('unsupported Cluster fields: refused with exit 3, never an initdb for a restore (real PostgreSQL 15)', function () {
  let base: string;
  let paths: PgimPaths;
  let ports: PgimPorts;

  beforeEach(async () => {
    base = await makeTempDir('unsupported');
    paths = { configDir: join(base, 'config'), pgdata: join(base, 'pgdata'), runtimeDir: join(base, 'runtime') };
    ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
  });

  afterEach(async () => {
    await removeTempDir(base);
  });

  for (const command of ['render', 'init', 'run'] as const) {
    it(`pgim ${command}: a restore pgim cannot do exits 3 naming the field, even with the annotation; PGDATA stays empty, never an initdb`, async () => {
      const cases: [TestClusterOptions, RegExp][] = [
        // A source without an object store: nothing to restore from.
        [recovery, /spec\.externalClusters\[0\]\.barmanObjectStore: is required: pgim restores \\"origin\\" from its object store/],
        // Volume snapshots, listed in the annotation: a restore is never ignored.
        [
          { spec: { bootstrap: { recovery: { volumeSnapshots: { storage: { name: 'snap', kind: 'VolumeSnapshot', apiGroup: 'snapshot.storage.k8s.io' } } } } }, annotations: { [ignoreAnnotation]: '["spec.bootstrap.recovery.volumeSnapshots"]' } },
          /ignoreUnsupportedFields: lists spec\.bootstrap\.recovery\.volumeSnapshots, which pgim never ignores: recovery from volume snapshots is not implemented/,
        ],
      ];
      for (const [manifest, message] of cases) {
        await writeConfigDir(paths.configDir, manifest, { appPassword: 'app-pw', superuserPassword: 'su-pw' });
        await handToPostgres(paths.configDir);
        const pgim = new PgimProcess(command, paths, ports, command === 'render' ? ['--out', join(base, 'rendered')] : []);
        const exit = await pgim.waitExit(30_000);
        assert.equal(exit.code, 3, pgim.output);
        assert.match(pgim.output, message);
        assert.deepEqual(await pgdataFiles(paths.pgdata), [], 'PGDATA holds nothing: no initdb ran');
        assert.deepEqual(await readdir(base).then((names) => names.filter((n) => n === 'rendered')), [], 'nothing rendered');
      }
    });
  }

  it('pgim render: spec.backup.volumeSnapshot is refused, and rendered once the annotation lists it (with a warning)', async () => {
    const backup = { spec: { backup: { volumeSnapshot: { className: 'snap' } } } };
    await writeConfigDir(paths.configDir, backup, { appPassword: 'app-pw', superuserPassword: 'su-pw' });
    const refused = new PgimProcess('render', paths, ports, ['--out', join(base, 'rendered')]);
    assert.equal((await refused.waitExit(30_000)).code, 3, refused.output);
    assert.match(refused.output, /spec\.backup\.volumeSnapshot: is not implemented by pgim: .*list it in the annotation pgim\.io\/ignoreUnsupportedFields/);
    await writeConfigDir(paths.configDir, { ...backup, annotations: { [ignoreAnnotation]: '["spec.backup.volumeSnapshot"]' } }, { appPassword: 'app-pw', superuserPassword: 'su-pw' });
    const accepted = new PgimProcess('render', paths, ports, ['--out', join(base, 'rendered')]);
    assert.equal((await accepted.waitExit(30_000)).code, 0, accepted.output);
    assert.match(accepted.output, /ignoring fields pgim does not implement, as the Cluster's annotation pgim\.io\/ignoreUnsupportedFields asks: spec\.backup\.volumeSnapshot/);
  });

  it('a running instance reports a refused field as a configuration error and keeps its last good configuration', async () => {
    let cluster: TestClusterOptions = { parameters: { work_mem: '5MB' } };
    await writeConfigDir(paths.configDir, cluster, { appPassword: 'app-pw', superuserPassword: 'su-pw' });
    await handToPostgres(paths.configDir);
    const pgim = new PgimProcess('run', paths, ports);
    try {
      await pgim.waitReady();
      const workMem = async (): Promise<string> => (await query<{ v: string }>(ports.pgPort, 'app', 'app-pw', "SELECT current_setting('work_mem') AS v"))[0]?.v ?? '';
      const status = async (): Promise<{ configurationError?: string }> => (await fetch(`${pgim.statusUrl}/pg/status`)).json() as Promise<{ configurationError?: string }>;
      cluster = { parameters: { work_mem: '9MB' }, spec: { plugins: [{ name: 'barman-cloud.cloudnative-pg.io' }] } };
      await writeClusterYaml(paths.configDir, cluster);
      const error = await eventually(async () => (await status()).configurationError, 15_000, 'a configuration error');
      assert.match(error, /spec\.plugins: is not implemented by pgim/);
      assert.equal(await workMem(), '5MB', 'the last good configuration stays');
      assert.ok((await fetch(`${pgim.statusUrl}/readyz`)).ok, 'still serving');
      await writeClusterYaml(paths.configDir, { ...cluster, annotations: { [ignoreAnnotation]: '["spec.plugins"]' } });
      await eventually(async () => ((await workMem()) === '9MB' ? true : undefined), 15_000, 'work_mem = 9MB once the annotation accepts it');
      // The pass that applied it clears the error once it has also decided about restarts.
      await eventually(async () => ((await status()).configurationError === undefined ? true : undefined), 15_000, 'the configuration error to clear');
    } finally {
      const exit = await pgim.stop().catch(() => undefined);
      if (!exit) await killPostmaster(paths.pgdata);
    }
  });
});
