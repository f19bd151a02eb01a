import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { writeClusterYaml, writeConfigDir, type TestClusterOptions } from '../../test-kit/config.js';
import { eventually, freePort, handToPostgres, makeTempDir, removeTempDir, sleep } from '../../test-kit/env.js';
import { connect, killPostmaster, PgimProcess, query, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';

interface Status {
  postmasterPid: number;
  restartCount: number;
  pendingRestart: boolean;
  loadedConfigurationHash?: string;
  configurationError?: string;
}

describe('live configuration: validate, apply, roll back, rotate (real PostgreSQL 15)', function () {
  const marker = `S3NTINEL${String(process.pid)}x${Math.random().toString(36).slice(2, 10)}`;
  let base: string;
  let paths: PgimPaths;
  let ports: PgimPorts;
  let pgim: PgimProcess;
  let cluster: TestClusterOptions;
  let appPassword = 'first-app-pw';
  const superPassword = 'su:pw\\with-colon';

  const status = async (): Promise<Status> => {
    const res = await fetch(`${pgim.statusUrl}/pg/status`);
    return (await res.json()) as Status;
  };
  const setting = async (name: string): Promise<string> => {
    const rows = await query<{ v: string }>(ports.pgPort, 'app', appPassword, `SELECT current_setting('${name}') AS v`);
    return rows[0]?.v ?? '';
  };
  let hashBeforeChange = '';
  const applyCluster = async (change: Partial<TestClusterOptions>): Promise<void> => {
    hashBeforeChange = await customConfHash();
    cluster = { ...cluster, ...change };
    await writeClusterYaml(paths.configDir, cluster);
  };
  const customConfHash = async (): Promise<string> => {
    const text = await readFile(join(paths.pgdata, 'custom.conf'), 'utf8').catch(() => '');
    return /pgim\.cluster_config_sha256 = '([0-9a-f]+)'/.exec(text)?.[1] ?? '';
  };
  /** Waits until PostgreSQL reports the hash of a render newer than the one before the last change. */
  const waitLoaded = async (): Promise<void> => {
    await eventually(async () => {
      const s = await status();
      const onDisk = await customConfHash();
      return onDisk !== hashBeforeChange && s.loadedConfigurationHash === onDisk ? true : undefined;
    }, 15_000, 'the new render to be loaded');
  };
  const waitConfigError = (pattern: RegExp): Promise<string> =>
    eventually(async () => {
      const s = await status();
      return s.configurationError !== undefined && pattern.test(s.configurationError) ? s.configurationError : undefined;
    }, 15_000, `a configuration error matching ${String(pattern)}`);

  before(async () => {
    base = await makeTempDir('live');
    paths = { configDir: join(base, 'config'), pgdata: join(base, 'pgdata'), runtimeDir: join(base, 'runtime') };
    ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
    cluster = { smartShutdownTimeout: 1, stopDelay: 20 };
    await writeConfigDir(paths.configDir, cluster, { appPassword, superuserPassword: superPassword });
    await handToPostgres(paths.configDir);
    pgim = new PgimProcess('run', paths, ports);
    await pgim.waitReady();
  });

  after(async () => {
    const exit = await pgim.stop().catch(() => undefined);
    if (!exit) await killPostmaster(paths.pgdata);
    await removeTempDir(base);
  });

  it('applies a reload-level change within 2 s, without a restart, and confirms the loaded render', async () => {
    const before = await status();
    await applyCluster({ parameters: { work_mem: '7MB' } });
    await eventually(async () => ((await setting('work_mem')) === '7MB' ? true : undefined), 2_000, 'work_mem = 7MB');
    await waitLoaded();
    assert.equal((await status()).postmasterPid, before.postmasterPid);
  });

  it('applies a burst of edits once', async () => {
    const written = (): number => pgim.lines.filter((l) => l.includes('"configuration written"')).length;
    const before = written();
    for (const mb of [8, 9, 10, 11, 12]) {
      await applyCluster({ parameters: { work_mem: `${mb}MB` } });
      await sleep(10);
    }
    await eventually(async () => ((await setting('work_mem')) === '12MB' ? true : undefined), 5_000, 'work_mem = 12MB');
    await sleep(1500);
    assert.equal(written() - before, 1, 'one render written for the whole burst');
  });

  it('restarts in place for a restart-level change (unsupervised), without counting a crash', async () => {
    const before = await status();
    await applyCluster({ parameters: { work_mem: '12MB', shared_buffers: '24MB' } });
    await eventually(async () => ((await setting('shared_buffers')) === '24MB' ? true : undefined), 30_000, 'shared_buffers = 24MB');
    const after = await status();
    assert.notEqual(after.postmasterPid, before.postmasterPid, 'restarted');
    assert.equal(after.restartCount, before.restartCount, 'a planned restart is not a crash');
    assert.equal(after.pendingRestart, false);
  });

  it('only reports a pending restart when primaryUpdateStrategy is supervised', async () => {
    const before = await status();
    await applyCluster({ parameters: { work_mem: '12MB', shared_buffers: '32MB' }, spec: { primaryUpdateStrategy: 'supervised' } });
    await eventually(async () => ((await status()).pendingRestart ? true : undefined), 10_000, 'pendingRestart');
    await sleep(500);
    assert.equal((await status()).postmasterPid, before.postmasterPid, 'not restarted');
    assert.equal(await setting('shared_buffers'), '24MB');
    await applyCluster({ parameters: { work_mem: '12MB', shared_buffers: '24MB' }, spec: {} });
    await eventually(async () => ((await status()).pendingRestart ? undefined : true), 10_000, 'no pending restart');
  });

  it('refuses a value PostgreSQL rejects before writing it, keeps serving, then recovers', async () => {
    const customBefore = await readFile(join(paths.pgdata, 'custom.conf'));
    await applyCluster({ parameters: { work_mem: '12MB', shared_buffers: 'lots' } });
    const message = await waitConfigError(/invalid value for parameter "shared_buffers"/);
    assert.match(message, /cluster\.yaml: spec\.postgresql\.parameters: PostgreSQL refuses them/);
    assert.deepEqual(await readFile(join(paths.pgdata, 'custom.conf')), customBefore, 'custom.conf untouched');
    assert.equal(await setting('work_mem'), '12MB', 'still serving the last good configuration');
    await applyCluster({ parameters: { work_mem: '13MB', shared_buffers: '24MB' } });
    await eventually(async () => ((await setting('work_mem')) === '13MB' ? true : undefined), 5_000, 'work_mem = 13MB');
    // The pass that applied it clears the error once it has also decided about restarts.
    await eventually(async () => ((await status()).configurationError === undefined ? true : undefined), 5_000, 'error cleared');
  });

  it('refuses a misspelled parameter name (PostgreSQL would not start with it)', async () => {
    await applyCluster({ parameters: { work_mem: '13MB', shared_buffers: '24MB', log_diconnections: 'on' } });
    await waitConfigError(/unrecognized configuration parameter "log_diconnections"/);
    await applyCluster({ parameters: { work_mem: '13MB', shared_buffers: '24MB' } });
    await eventually(async () => ((await status()).configurationError === undefined ? true : undefined), 5_000, 'error cleared');
  });

  it('refuses @file references and include lines in pg_hba before writing', async () => {
    const hbaBefore = await readFile(join(paths.pgdata, 'pg_hba.conf'));
    await applyCluster({ pgHba: ['local @/etc/passwd all reject'] });
    await waitConfigError(/spec\.postgresql\.pg_hba\[0\]: @file references are not allowed/);
    await applyCluster({ pgHba: ['include_if_exists /tmp/evil.conf'] });
    await waitConfigError(/spec\.postgresql\.pg_hba\[0\]: include directives are not allowed/);
    await applyCluster({ pgHba: [], pgIdent: ['mymap alice'] });
    await waitConfigError(/spec\.postgresql\.pg_ident\[0\]: a mapping needs exactly three fields/);
    assert.deepEqual(await readFile(join(paths.pgdata, 'pg_hba.conf')), hbaBefore);
  });

  it('rolls back pg_hba.conf when PostgreSQL refuses a rule only it can judge', async () => {
    await applyCluster({ pgHba: [], pgIdent: [] });
    await eventually(async () => ((await status()).configurationError === undefined ? true : undefined), 5_000, 'error cleared');
    const hbaBefore = await readFile(join(paths.pgdata, 'pg_hba.conf'));
    await applyCluster({ pgHba: ['host all all 127.0.0.1/32 scram-sha-256 clientcert=verify-full'] });
    const message = await waitConfigError(/PostgreSQL refuses the new files: pg_hba\.conf line \d+: clientcert can only be configured for "hostssl" rows/);
    assert.ok(message.length > 0);
    assert.deepEqual(await readFile(join(paths.pgdata, 'pg_hba.conf')), hbaBefore, 'previous pg_hba.conf restored');
    const client = await connect(ports.pgPort, 'app', appPassword);
    await client.end();
    await applyCluster({ pgHba: [] });
    await eventually(async () => ((await status()).configurationError === undefined ? true : undefined), 5_000, 'error cleared');
  });

  it('keeps streaming_replica out without a certificate, whatever the user rules say', async () => {
    await applyCluster({ pgHba: ['hostssl replication streaming_replica all trust'] });
    await waitLoaded();
    await assert.rejects(connect(ports.pgPort, 'streaming_replica', 'anything', 'postgres'), /password authentication failed/);
  });

  it('turns the default rule off (annotation), so pg_hba is a real allow-list', async () => {
    await applyCluster({ pgHba: ['host app app 10.0.0.0/8 scram-sha-256'], annotations: { 'pgim.io/hbaDefaultRule': 'disabled' } });
    await waitLoaded();
    await assert.rejects(connect(ports.pgPort, 'app', appPassword), /no pg_hba\.conf entry/);
    await applyCluster({ pgHba: ['host app app 127.0.0.1/32 scram-sha-256', 'host all all all reject'], annotations: {} });
    await waitLoaded();
    const hba = await readFile(join(paths.pgdata, 'pg_hba.conf'), 'utf8');
    assert.doesNotMatch(hba, /^host all all all scram-sha-256$/m, 'an explicit final rule replaces the default');
    await (await connect(ports.pgPort, 'app', appPassword)).end();
    await assert.rejects(connect(ports.pgPort, 'postgres', superPassword, 'postgres'), /rejects connection/);
    await applyCluster({ pgHba: [] });
    await waitLoaded();
  });

  it('rotates the owner password through a Kubernetes-style ..data swap: old fails, new works, no restart', async () => {
    const before = await status();
    const secretDir = join(paths.configDir, 'secrets', 'itest-app');
    // Re-lay the Secret as a projected volume: key -> ..data/key -> ..<version>/key.
    await mkdir(join(secretDir, '..v1'));
    await writeFile(join(secretDir, '..v1', 'username'), 'app');
    await writeFile(join(secretDir, '..v1', 'password'), appPassword);
    await symlink('..v1', join(secretDir, '..data'));
    for (const key of ['username', 'password']) {
      await rm(join(secretDir, key));
      await symlink(`..data/${key}`, join(secretDir, key));
    }
    await handToPostgres(secretDir);
    const next = `${marker}:rot\\ated`;
    await mkdir(join(secretDir, '..v2'));
    await writeFile(join(secretDir, '..v2', 'username'), 'app');
    await writeFile(join(secretDir, '..v2', 'password'), next);
    await symlink('..v2', join(secretDir, '..data_tmp'));
    await handToPostgres(secretDir);
    const started = Date.now();
    await rename(join(secretDir, '..data_tmp'), join(secretDir, '..data'));
    await eventually(async () => {
      await (await connect(ports.pgPort, 'app', next)).end();
      return true;
    }, 5_000, 'the new password to work');
    const elapsed = Date.now() - started;
    await assert.rejects(connect(ports.pgPort, 'app', appPassword), /password authentication failed/);
    appPassword = next;
    assert.equal((await status()).postmasterPid, before.postmasterPid, 'no restart');
    console.log(`      secret change -> new password works: ${elapsed} ms`);
  });

  it('writes .pgpass (0600, escaped) for the roles pgim can authenticate as; libpq uses it', async () => {
    const passfile = join(paths.runtimeDir, 'pgpass');
    assert.equal((await stat(passfile)).mode & 0o777, 0o600);
    const text = await readFile(passfile, 'utf8');
    assert.equal(text.split('\n').filter(Boolean).length, 1, 'the superuser only while superuser access is enabled');
    const out = execFileSync('/usr/lib/postgresql/15/bin/psql', ['-w', '-h', '127.0.0.1', '-p', String(ports.pgPort), '-U', 'app', '-d', 'app', '-Atc', 'select 42'], {
      env: { ...process.env, PGPASSFILE: passfile, PGPASSWORD: '' },
      encoding: 'utf8',
    });
    assert.equal(out.trim(), '42');
  });

  it('applies the superuser password only while superuser access is enabled', async () => {
    await assert.rejects(connect(ports.pgPort, 'postgres', superPassword, 'postgres'), /password authentication failed/);
    await applyCluster({ enableSuperuserAccess: true });
    await eventually(async () => {
      await (await connect(ports.pgPort, 'postgres', superPassword, 'postgres')).end();
      return true;
    }, 5_000, 'superuser login');
    const text = await readFile(join(paths.runtimeDir, 'pgpass'), 'utf8');
    assert.match(text, /^\*:\d+:\*:postgres:su\\:pw\\\\with-colon$/m, '`:` and `\\` escaped');
  });

  it('takes the password off streaming_replica at every start', async () => {
    const su = await connect(ports.pgPort, 'postgres', superPassword, 'postgres');
    try {
      await su.query("ALTER ROLE streaming_replica PASSWORD 'sneaky'");
    } finally {
      await su.end();
    }
    const before = await status();
    process.kill(before.postmasterPid, 'SIGKILL');
    await eventually(async () => {
      const s = await status();
      return s.postmasterPid !== before.postmasterPid ? true : undefined;
    }, 30_000, 'restart');
    await eventually(async () => {
      const rows = await query<{ has: boolean }>(ports.pgPort, 'postgres', superPassword,
        "SELECT rolpassword IS NOT NULL AS has FROM pg_authid WHERE rolname = 'streaming_replica'");
      return rows[0]?.has === false ? true : undefined;
    }, 10_000, 'streaming_replica without a password');
  });

  it('turning superuser access off again sets the password to NULL', async () => {
    await applyCluster({ enableSuperuserAccess: false });
    await eventually(async () => {
      try {
        await (await connect(ports.pgPort, 'postgres', superPassword, 'postgres')).end();
        return undefined;
      } catch {
        return true;
      }
    }, 5_000, 'superuser refused');
  });

  it('any parameter value survives cluster.yaml -> render -> PostgreSQL -> current_setting unchanged', async function () {
    this.timeout(120_000);
    const value = fc.string({ unit: 'binary', maxLength: 60 }).filter((s) => !s.includes('\0'));
    await fc.assert(
      fc.asyncProperty(fc.array(value, { minLength: 8, maxLength: 8 }), async (values) => {
        const parameters: Record<string, string> = { work_mem: '13MB', shared_buffers: '24MB' };
        values.forEach((v, i) => (parameters[`pgimtest.p${i}`] = v));
        await applyCluster({ parameters });
        await waitLoaded();
        const rows = await query<Record<string, string>>(ports.pgPort, 'app', appPassword,
          `SELECT ${values.map((_, i) => `current_setting('pgimtest.p${i}') AS p${i}`).join(', ')}`);
        values.forEach((v, i) => {
          assert.equal(rows[0]?.[`p${i}`], v);
        });
      }),
      { numRuns: 12 },
    );
  });

  it('never shows a password, even with log_statement = all', async () => {
    await applyCluster({ parameters: { work_mem: '13MB', shared_buffers: '24MB', log_statement: 'all' } });
    await waitLoaded();
    const secretDir = join(paths.configDir, 'secrets', 'itest-app');
    const next = `${marker}-second`;
    await mkdir(join(secretDir, '..v3'));
    await writeFile(join(secretDir, '..v3', 'username'), 'app');
    await writeFile(join(secretDir, '..v3', 'password'), next);
    await symlink('..v3', join(secretDir, '..data_tmp'));
    await handToPostgres(secretDir);
    await rename(join(secretDir, '..data_tmp'), join(secretDir, '..data'));
    await eventually(async () => {
      await (await connect(ports.pgPort, 'app', next)).end();
      return true;
    }, 5_000, 'the new password');
    appPassword = next;
    assert.ok(pgim.lines.some((l) => l.includes('statement:')), 'log_statement = all is active');
    assert.ok(!pgim.output.includes(marker), 'no password in pgim output or the PostgreSQL log');
    assert.ok(!pgim.output.includes('SCRAM-SHA-256$'), 'no verifier either');
  });
});
