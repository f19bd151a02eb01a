import { strict as assert } from 'node:assert';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeConfigDir } from '../../test-kit/config.js';
import { eventually, freePort, handToPostgres, makeTempDir, removeTempDir } from '../../test-kit/env.js';
import { connect, killPostmaster, PgimProcess, query, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';

describe('log pipe and the secret sentinel sweep (real PostgreSQL 15)', function () {
  const marker = `S3NTINEL-${Math.random().toString(36).slice(2, 12)}`;
  const secrets = { appPassword: `${marker}-app`, superuserPassword: `${marker}-su` };
  let base: string;
  let paths: PgimPaths;
  let ports: PgimPorts;
  let pgim: PgimProcess;
  const httpBodies: string[] = [];

  const fetchText = async (url: string): Promise<string> => {
    const body = await (await fetch(url)).text();
    httpBodies.push(body);
    return body;
  };

  before(async () => {
    base = await makeTempDir('logpipe');
    paths = { configDir: join(base, 'config'), pgdata: join(base, 'pgdata'), runtimeDir: join(base, 'runtime') };
    ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
    await writeConfigDir(paths.configDir, { enableSuperuserAccess: true, smartShutdownTimeout: 1, parameters: { log_statement: 'all' } }, secrets);
    await handToPostgres(paths.configDir);
    pgim = new PgimProcess('run', paths, ports);
    await pgim.waitReady();
  });

  after(async () => {
    await pgim.stop().catch(() => killPostmaster(paths.pgdata));
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
    for (const path of ['/healthz', '/readyz', '/startupz', '/pg/status', '/failsafe']) await fetchText(`${pgim.statusUrl}${path}`);
    await fetchText(`http://127.0.0.1:${ports.metricsPort}/metrics`);
    const exit = await pgim.stop();
    assert.equal(exit.code, 0);

    assert.ok(pgim.lines.some((l) => l.includes('"logger":"postgres"')), 'the PostgreSQL log went through pgim');
    assert.ok(!pgim.output.includes(marker), 'pgim output and the PostgreSQL log');
    for (const body of httpBodies) assert.ok(!body.includes(marker), 'an HTTP response');
    for (const name of ['postgresql.conf', 'custom.conf', 'override.conf', 'pg_hba.conf', 'pg_ident.conf']) {
      assert.ok(!(await readFile(join(paths.pgdata, name), 'utf8')).includes(marker), name);
    }
    for (const name of await readdir(join(paths.pgdata, 'log')).catch(() => [])) {
      assert.ok(!(await readFile(join(paths.pgdata, 'log', name), 'utf8')).includes(marker), `PGDATA/log/${name}`);
    }
    // The passfile is the one place a password is meant to be (0600, the runtime dir).
    assert.ok((await readFile(join(paths.runtimeDir, 'pgpass'), 'utf8')).includes(rotated));
  });
});
