// Files that are not what they seem (issue 24, items 5-9): a FIFO, a socket or a file only root may read where a
// Secret key or cluster.yaml should be, bytes that are not UTF-8, a YAML alias bomb, `@file` tokens in pg_hba and
// pg_ident. `pgim render` must end with exit code 3 naming the file and field; a running pgim must report the same
// as its configuration error, keep its last good configuration, keep applying later changes and still stop on
// SIGTERM. Runs as root in CI (pgim then reads as the postgres user) and as any user elsewhere.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { chmod, chown, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { clusterManifest, writeConfigDir, type TestClusterOptions } from '../../test-kit/config.js';
import { eventually, freePort, handToPostgres, isRoot, makeTempDir, removeTempDir } from '../../test-kit/env.js';
import { connect, PgimProcess, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';

const secrets = { appPassword: 'S3NTINEL-faults-files-app', superuserPassword: 'S3NTINEL-faults-files-su' };

/** A YAML "billion laughs": nine levels of nine aliases each, 9^9 strings once expanded. */
function aliasBomb(): string {
  const lines = ['a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
  for (let level = 1; level <= 9; level++) lines.push(`a${level}: &a${level} [${Array.from({ length: 9 }, () => `*a${level - 1}`).join(', ')}]`);
  return `apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata: {name: itest}\n${lines.join('\n')}\nspec: {instances: 1}\n`;
}

/** cluster.yaml with `work_mem` set to bytes that are not UTF-8 (a Latin-1 "é"). */
function clusterWithLatin1Value(options: TestClusterOptions = {}): Buffer {
  const text = stringify(clusterManifest({ ...options, parameters: { application_name: 'PLACEHOLDER' } }));
  const [before, after] = text.split('PLACEHOLDER');
  return Buffer.concat([Buffer.from(before ?? ''), Buffer.from([0x63, 0x61, 0x66, 0xe9]), Buffer.from(after ?? '')]);
}

describe('faults: files that are not what they seem (render: exit 3 naming the file)', function () {
  let base: string;
  let paths: PgimPaths;
  let ports: PgimPorts;
  let out: string;
  const servers: Server[] = [];

  beforeEach(async () => {
    base = await makeTempDir('faults-files');
    paths = { configDir: join(base, 'config'), pgdata: join(base, 'pgdata'), runtimeDir: join(base, 'runtime') };
    ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
    out = join(base, 'out');
    await writeConfigDir(paths.configDir, {}, secrets);
  });

  afterEach(async () => {
    for (const server of servers.splice(0)) server.close();
    await removeTempDir(base);
  });

  const secretFile = (key: string, secret = 'itest-app'): string => join(paths.configDir, 'secrets', secret, key);

  async function render(): Promise<{ code: number | null; output: string }> {
    await handToPostgres(paths.configDir);
    const pgim = new PgimProcess('render', paths, ports, ['--out', out]);
    const exit = await pgim.waitExit(30_000);
    assert.ok(!pgim.output.includes('S3NTINEL'), 'no secret value in the output');
    return { code: exit.code, output: pgim.output };
  }

  async function renderRefused(pattern: RegExp): Promise<string> {
    const { code, output } = await render();
    assert.equal(code, 3, `exit code 3 (invalid configuration); output:\n${output}`);
    assert.match(output, pattern);
    return output;
  }

  it('item 5: a FIFO as a Secret key: render returns at once with exit 3 naming the Secret and key', async () => {
    await rm(secretFile('password'));
    execFileSync('mkfifo', [secretFile('password')]);
    await renderRefused(/secret itest-app: password: is not a regular file/);
  });

  it('item 5: a FIFO as cluster.yaml: exit 3 naming the file', async () => {
    const clusterFile = join(paths.configDir, 'cluster.yaml');
    await rm(clusterFile);
    execFileSync('mkfifo', [clusterFile]);
    await renderRefused(/cluster\.yaml: is not a regular file/);
  });

  it('item 5: a Unix socket, and a symlink to a FIFO, as Secret keys: exit 3 naming the key', async () => {
    await rm(secretFile('password'));
    const server = createServer();
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(secretFile('password'), resolve));
    await renderRefused(/secret itest-app: password: is not a regular file/);
    server.close();
    await rm(secretFile('password'), { force: true });
    execFileSync('mkfifo', [secretFile('..fifo')]);
    await symlink('..fifo', secretFile('password'));
    await renderRefused(/secret itest-app: password: is not a regular file/);
  });

  it('item 6: a Secret key only root may read (mode 000 when not root): exit 3 naming the Secret and key', async () => {
    await handToPostgres(paths.configDir);
    if (isRoot) await chown(secretFile('password'), 0, 0);
    await chmod(secretFile('password'), isRoot ? 0o600 : 0o000);
    const pgim = new PgimProcess('render', paths, ports, ['--out', out]);
    const exit = await pgim.waitExit(30_000);
    assert.equal(exit.code, 3, pgim.output);
    assert.match(pgim.output, /secret itest-app: password: cannot be read by uid \d+ \(permission denied\)/);
    assert.doesNotMatch(pgim.output, /EACCES/);
  });

  it('item 6: a Secret folder only root may read (mode 000 when not root): exit 3 naming the Secret', async () => {
    await handToPostgres(paths.configDir);
    const folder = join(paths.configDir, 'secrets', 'itest-app');
    if (isRoot) await chown(folder, 0, 0);
    await chmod(folder, isRoot ? 0o700 : 0o000);
    const pgim = new PgimProcess('render', paths, ports, ['--out', out]);
    const exit = await pgim.waitExit(30_000);
    await chmod(folder, 0o755);
    assert.equal(exit.code, 3, pgim.output);
    assert.match(pgim.output, /secret itest-app: \S+itest-app cannot be read by uid \d+ \(permission denied\)/);
    assert.doesNotMatch(pgim.output, /EACCES|scandir/);
  });

  it('item 6 (decision): secrets/ may be a symlink to a folder outside the config folder; a key may not leave its Secret', async () => {
    const elsewhere = join(base, 'mounted-secrets');
    await rename(join(paths.configDir, 'secrets'), elsewhere);
    await symlink(elsewhere, join(paths.configDir, 'secrets'));
    await handToPostgres(elsewhere);
    const accepted = await render();
    assert.equal(accepted.code, 0, accepted.output);
    await writeFile(join(base, 'outside-key'), 'x');
    await rm(join(elsewhere, 'itest-app', 'password'));
    await symlink(join(base, 'outside-key'), join(elsewhere, 'itest-app', 'password'));
    await renderRefused(/secret itest-app: password: resolves outside its folder/);
  });

  it('item 7: a parameter value that is not UTF-8: exit 3 naming the parameter', async () => {
    await writeFile(join(paths.configDir, 'cluster.yaml'), clusterWithLatin1Value());
    await renderRefused(/cluster\.yaml: spec\.postgresql\.parameters\.application_name: is not valid UTF-8 \(line \d+\)/);
  });

  it('item 8: a YAML alias bomb: exit 3 naming the file', async () => {
    await writeFile(join(paths.configDir, 'cluster.yaml'), aliasBomb());
    await renderRefused(/cluster\.yaml: YAML aliases cannot be expanded: Excessive alias count/);
  });

  it('item 9: pg_ident `@file` and pg_hba `all,@file` are refused, the entry named', async () => {
    await writeFile(join(paths.configDir, 'cluster.yaml'), stringify(clusterManifest({ pgIdent: ['m1 root @/etc/hostname'] })));
    await renderRefused(/spec\.postgresql\.pg_ident\[0\]: @file references are not allowed/);
    await writeFile(join(paths.configDir, 'cluster.yaml'), stringify(clusterManifest({ pgHba: ['local all,@/etc/hostname all reject'] })));
    await renderRefused(/spec\.postgresql\.pg_hba\[0\]: @file references are not allowed/);
    // A quoted "@name" is a name to PostgreSQL, not a file: accepted.
    await writeFile(join(paths.configDir, 'cluster.yaml'), stringify(clusterManifest({ pgIdent: ['m1 root "@literal"'] })));
    const quoted = await render();
    assert.equal(quoted.code, 0, quoted.output);
    assert.match(await readFile(join(out, 'pg_ident.conf'), 'utf8'), /m1 root "@literal"/);
  });
});

describe('faults: files that are not what they seem, live (real PostgreSQL 15)', function () {
  let base: string;
  let paths: PgimPaths;
  let ports: PgimPorts;
  let pgim: PgimProcess | undefined;

  before(async () => {
    base = await makeTempDir('faults-files-live');
    paths = { configDir: join(base, 'config'), pgdata: join(base, 'pgdata'), runtimeDir: join(base, 'runtime') };
    ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
    await writeConfigDir(paths.configDir, { smartShutdownTimeout: 1, stopDelay: 20 }, secrets);
    await handToPostgres(paths.configDir);
    pgim = new PgimProcess('run', paths, ports);
    await pgim.waitReady();
  });

  after(async () => {
    if (pgim) await pgim.stop().catch(() => undefined);
    await removeTempDir(base);
  });

  const configurationError = async (): Promise<string | undefined> => {
    const res = await fetch(`http://127.0.0.1:${ports.statusPort}/pg/status`);
    return ((await res.json()) as { configurationError?: string }).configurationError;
  };
  const waitError = (pattern: RegExp): Promise<string> =>
    eventually(async () => {
      const error = await configurationError();
      return error !== undefined && pattern.test(error) ? error : undefined;
    }, 20_000, `configurationError matching ${String(pattern)}`);
  const waitNoError = (): Promise<boolean> => eventually(async () => ((await configurationError()) === undefined ? true : undefined), 20_000, 'no configurationError');
  /** Replaces a file atomically, as a ConfigMap or Secret update does. */
  const replace = async (path: string, content: string | Buffer): Promise<void> => {
    await writeFile(`${path}.new`, content);
    await handToPostgres(`${path}.new`);
    await rename(`${path}.new`, path);
  };
  const clusterFile = (): string => join(paths.configDir, 'cluster.yaml');
  const passwordFile = (): string => join(paths.configDir, 'secrets', 'itest-app', 'password');

  it('item 8: an alias bomb is reported as configurationError naming the file; the good file applies again', async () => {
    const good = await readFile(clusterFile());
    await replace(clusterFile(), aliasBomb());
    await waitError(/cluster\.yaml: YAML aliases cannot be expanded/);
    await replace(clusterFile(), good);
    await waitNoError();
  });

  it('item 7: a value that is not UTF-8 is reported live, naming the parameter', async () => {
    const good = await readFile(clusterFile());
    await replace(clusterFile(), clusterWithLatin1Value({ smartShutdownTimeout: 1, stopDelay: 20 }));
    await waitError(/spec\.postgresql\.parameters\.application_name: is not valid UTF-8/);
    await replace(clusterFile(), good);
    await waitNoError();
  });

  it('item 5: a FIFO as a Secret key is reported live; a later password change still applies; SIGTERM still stops pgim', async () => {
    const fifo = `${passwordFile()}.fifo`;
    execFileSync('mkfifo', [fifo]);
    await handToPostgres(fifo);
    await rename(fifo, passwordFile());
    await waitError(/secret itest-app: password: is not a regular file/);
    // Several passes over the FIFO (the 10 s poll, each change) must not use up the thread pool: the next real
    // change is applied.
    for (let i = 0; i < 5; i++) await replace(clusterFile(), await readFile(clusterFile()));
    await replace(passwordFile(), 'second-app-pw');
    await waitNoError();
    await eventually(async () => {
      const client = await connect(ports.pgPort, 'app', 'second-app-pw').catch(() => undefined);
      await client?.end();
      return client ? true : undefined;
    }, 20_000, 'the new password to work');
    execFileSync('mkfifo', [fifo]);
    await handToPostgres(fifo);
    await rename(fifo, passwordFile());
    await waitError(/is not a regular file/);
    const running = pgim;
    pgim = undefined;
    assert.ok(running);
    assert.equal((await running.stop(60_000)).code, 0, running.output.slice(-2000));
  });
});

describe('faults: the config folder is read as the postgres user from the first read on (root only)', function () {
  let base: string;
  let paths: PgimPaths;
  let ports: PgimPorts;

  before(function () {
    if (!isRoot) this.skip(); // only a root start drops privileges; CI runs as root
  });

  beforeEach(async () => {
    base = await makeTempDir('faults-first-read');
    paths = { configDir: join(base, 'config'), pgdata: join(base, 'pgdata'), runtimeDir: join(base, 'runtime') };
    ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
    await writeConfigDir(paths.configDir, {}, secrets);
    await handToPostgres(paths.configDir);
  });

  afterEach(async () => {
    await removeTempDir(base);
  });

  it('item 4: a cluster.yaml only root may read is refused by the first read (exit 3), before anything is created', async () => {
    await chown(join(paths.configDir, 'cluster.yaml'), 0, 0);
    await chmod(join(paths.configDir, 'cluster.yaml'), 0o600);
    const pgim = new PgimProcess('run', paths, ports);
    const exit = await pgim.waitExit(30_000);
    assert.equal(exit.code, 3, pgim.output);
    assert.match(pgim.output, /cluster\.yaml: cannot be read by uid \d+ \(permission denied\)/);
    const uid = Number(/cannot be read by uid (\d+)/.exec(pgim.output)?.[1]);
    assert.notEqual(uid, 0, 'read with the postgres user\'s effective uid');
    for (const path of [paths.pgdata, paths.runtimeDir]) {
      await assert.rejects(readFile(path), /ENOENT/, `${path} was not created`);
    }
  });

  it('item 4: a Secret folder only root may enter is refused by the first read (exit 3), before anything is created', async () => {
    const folder = join(paths.configDir, 'secrets', 'itest-app');
    await chown(folder, 0, 0);
    await chmod(folder, 0o700);
    const pgim = new PgimProcess('run', paths, ports);
    const exit = await pgim.waitExit(30_000);
    assert.equal(exit.code, 3, pgim.output);
    assert.match(pgim.output, /secret itest-app: \S+ cannot be read by uid \d+/);
    await assert.rejects(readFile(paths.pgdata), /ENOENT/, 'PGDATA was not created');
  });
});
