import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeConfigDir } from '../../test-kit/config.js';
import { freePort, handToPostgres, makeTempDir, removeTempDir } from '../../test-kit/env.js';
import { PgimProcess, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';

const secretMarker = 'S3NTINEL-bad-config-4d1f';

/** Path -> sha256 of every file under `dir` (missing dir: empty), to prove nothing on disk changed. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.set(p, createHash('sha256').update(await readFile(p)).digest('hex'));
    }
  };
  await walk(dir);
  return out;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

describe('bad configuration: a clear error naming the file and field, nothing on disk touched', function () {
  let base: string;
  let paths: PgimPaths;
  let ports: PgimPorts;

  beforeEach(async () => {
    base = await makeTempDir('badcfg');
    paths = { configDir: join(base, 'config'), pgdata: join(base, 'pgdata'), runtimeDir: join(base, 'runtime') };
    ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
    await writeConfigDir(paths.configDir, {}, { appPassword: secretMarker, superuserPassword: `${secretMarker}-su` });
  });

  afterEach(async () => {
    await removeTempDir(base);
  });

  async function runExpectingFailure(): Promise<PgimProcess> {
    await handToPostgres(paths.configDir);
    const pgim = new PgimProcess('run', paths, ports);
    const exit = await pgim.waitExit(30_000);
    assert.equal(exit.code, 3, `exit code 3 (invalid configuration); output:\n${pgim.output}`);
    assert.ok(!(await exists(paths.pgdata)), 'PGDATA not created');
    assert.ok(!(await exists(paths.runtimeDir)), 'runtime dir not created');
    assert.ok(!pgim.output.includes(secretMarker), 'no secret value in the output');
    return pgim;
  }

  const clusterFile = (): string => join(paths.configDir, 'cluster.yaml');

  it('invalid YAML: names the file, line and column', async () => {
    await writeFile(clusterFile(), 'apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata: {name: x\nspec: [\n');
    const pgim = await runExpectingFailure();
    assert.ok(pgim.output.includes(`${clusterFile()}: invalid YAML at line 4, column 1`), pgim.output);
  });

  it('a bad field value: names the field path', async () => {
    const text = (await readFile(clusterFile(), 'utf8')).replace('instances: 1', 'instances: 0');
    await writeFile(clusterFile(), text);
    const pgim = await runExpectingFailure();
    assert.match(pgim.output, /cluster\.yaml: spec\.instances: must be at least 1/);
  });

  it('a parameter given as a YAML number: names the parameter', async () => {
    const text = (await readFile(clusterFile(), 'utf8')).replace("max_connections: \"30\"", 'max_connections: 30');
    await writeFile(clusterFile(), text);
    const pgim = await runExpectingFailure();
    assert.match(pgim.output, /spec\.postgresql\.parameters\.max_connections: must be a string/);
  });

  it('a fixed parameter in another case (ARCHIVE_COMMAND) is refused', async () => {
    const text = (await readFile(clusterFile(), 'utf8')).replace('parameters:', 'parameters:\n      ARCHIVE_COMMAND: /bin/true');
    await writeFile(clusterFile(), text);
    const pgim = await runExpectingFailure();
    assert.match(pgim.output, /ARCHIVE_COMMAND.*can't set fixed configuration parameter/);
  });

  it('a wrong kind or apiVersion is refused', async () => {
    const text = (await readFile(clusterFile(), 'utf8')).replace('kind: Cluster', 'kind: Pooler');
    await writeFile(clusterFile(), text);
    const pgim = await runExpectingFailure();
    assert.match(pgim.output, /cluster\.yaml: kind: must be Cluster/);
  });

  it('a missing cluster.yaml names the file', async () => {
    await rm(clusterFile());
    const pgim = await runExpectingFailure();
    assert.match(pgim.output, /cluster\.yaml: does not exist/);
  });

  it('a missing Secret names the Secret', async () => {
    await rm(join(paths.configDir, 'secrets', 'itest-app'), { recursive: true });
    const pgim = await runExpectingFailure();
    assert.match(pgim.output, /secret itest-app: not found/);
  });

  it('a missing key names the Secret and key', async () => {
    await rm(join(paths.configDir, 'secrets', 'itest-app', 'password'));
    const pgim = await runExpectingFailure();
    assert.match(pgim.output, /secret itest-app: password: key is missing/);
  });

  it('a password with a line break is refused without printing it', async () => {
    await writeFile(join(paths.configDir, 'secrets', 'itest-app', 'password'), `${secretMarker}\n`);
    const pgim = await runExpectingFailure();
    assert.match(pgim.output, /secret itest-app: password: contains a line break or NUL/);
  });

  it('a username that is not the owner is refused', async () => {
    await writeFile(join(paths.configDir, 'secrets', 'itest-app', 'username'), 'mallory');
    const pgim = await runExpectingFailure();
    assert.match(pgim.output, /secret itest-app: username: must be \\"app\\"/);
  });

  it('a Secret key that is a symlink out of its folder is refused', async () => {
    const outside = join(base, 'outside');
    await writeFile(outside, 'not a secret');
    await rm(join(paths.configDir, 'secrets', 'itest-app', 'password'));
    const { symlink } = await import('node:fs/promises');
    await symlink(outside, join(paths.configDir, 'secrets', 'itest-app', 'password'));
    const pgim = await runExpectingFailure();
    assert.match(pgim.output, /secret itest-app: password: resolves outside its folder/);
  });

  it('an existing PGDATA stays byte-identical when the config is bad', async () => {
    await mkdir(paths.pgdata, { mode: 0o700 });
    await writeFile(join(paths.pgdata, 'precious.txt'), 'keep me');
    await handToPostgres(paths.pgdata);
    const before = await snapshot(paths.pgdata);
    await rm(join(paths.configDir, 'secrets', 'itest-app'), { recursive: true });
    const pgim = new PgimProcess('run', paths, ports);
    assert.equal((await pgim.waitExit(30_000)).code, 3, pgim.output);
    assert.deepEqual(await snapshot(paths.pgdata), before);
  });

  it('a non-empty PGDATA that is not a cluster is refused, never initialised over', async () => {
    await mkdir(paths.pgdata, { mode: 0o700 });
    await writeFile(join(paths.pgdata, 'precious.txt'), 'keep me');
    await handToPostgres(paths.configDir);
    await handToPostgres(paths.pgdata);
    const before = await snapshot(paths.pgdata);
    const pgim = new PgimProcess('run', paths, ports);
    const exit = await pgim.waitExit(30_000);
    assert.equal(exit.code, 5, pgim.output);
    assert.match(pgim.output, /is not empty and holds no valid PostgreSQL cluster/);
    assert.deepEqual(await snapshot(paths.pgdata), before);
  });
});
