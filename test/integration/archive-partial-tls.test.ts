import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { writeClusterYaml, writeConfigDir, type TestClusterOptions } from '../../test-kit/config.js';
import { eventually, freePort, handToPostgres, makeTempDir, removeTempDir } from '../../test-kit/env.js';
import { killPostmaster, pgimEntry, PgimProcess, query, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';
import { backupSpec, requireBackupParts, S3Server, writeBackupSecret } from '../../test-kit/s3.js';

interface Pair {
  cert: Buffer;
  key: Buffer;
}

/** A self-signed P-256 pair, as CNPG's operator keeps its client certificate; its SPKI SHA-256 by openssl alone. */
function operatorStyleCertificate(dir: string, name: string): Pair & { fingerprint: string } {
  const [key, cert] = [join(dir, `${name}.key`), join(dir, `${name}.crt`)];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=cnpg-operator', '-days', '2'], { stdio: 'ignore' });
  const fingerprint = execFileSync('sh', ['-c', `openssl x509 -in '${cert}' -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum`], { encoding: 'utf8' }).split(' ')[0] ?? '';
  return { cert: readFileSync(cert), key: readFileSync(key), fingerprint };
}

/** A TLS 1.3 request the way CNPG's operator makes it: its client certificate, no CA check of the server. */
function call(port: number, method: string, path: string, client?: Pair): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, method, path, agent: false, minVersion: 'TLSv1.3', rejectUnauthorized: false, ...(client ?? {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * CNPG's `POST /pg/archive/partial` as its operator calls it on a fenced former primary: TLS 1.3 with the operator's
 * client certificate (pinned by `status.operatorCertificateFingerprint`). The partial segment lands in the store
 * where Barman names it (`wals/<timeline+log>/<segment>.partial`); other callers are refused.
 */
describe('/pg/archive/partial with an operator client certificate (TLS, fenced primary, versitygw)', function () {
  this.timeout(300_000);
  const cleanup: (() => Promise<unknown>)[] = [];
  const secrets = { appPassword: 'app-pass-partial', superuserPassword: 'su-pass-partial' };
  const path = 'partial-test';
  let s3: S3Server;
  let base: string;
  let paths: PgimPaths;
  let ports: PgimPorts;
  let operator: Pair & { fingerprint: string };
  let stranger: Pair & { fingerprint: string };
  let options: TestClusterOptions;

  const writeCluster = async (annotations?: Record<string, string>): Promise<void> => {
    await writeClusterYaml(paths.configDir, { ...options, ...(annotations === undefined ? {} : { annotations }) });
    const file = join(paths.configDir, 'cluster.yaml');
    await writeFile(`${file}.tmp`, `${await readFile(file, 'utf8')}${stringify({ status: { operatorCertificateFingerprint: operator.fingerprint } })}`);
    await rename(`${file}.tmp`, file);
  };

  before(async function () {
    requireBackupParts(this);
    s3 = await S3Server.start();
    cleanup.push(() => s3.stop());
    base = await makeTempDir('partial');
    cleanup.push(() => removeTempDir(base));
    paths = { configDir: join(base, 'config'), pgdata: join(base, 'pgdata'), runtimeDir: join(base, 'runtime') };
    ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
    options = { enableSuperuserAccess: true, spec: backupSpec(s3, path) };
    await writeConfigDir(paths.configDir, options, secrets);
    await writeBackupSecret(paths.configDir, s3);
    execFileSync(process.execPath, [pgimEntry, 'certs', '--cluster', 'itest', '--instances', '1', '--out', join(paths.configDir, 'secrets')], { stdio: 'ignore' });
    operator = operatorStyleCertificate(base, 'operator');
    stranger = operatorStyleCertificate(base, 'stranger');
    await writeCluster();
    await handToPostgres(paths.configDir);
    const pgim = new PgimProcess('run', paths, ports, ['--status-tls']);
    cleanup.push(() => pgim.stop().catch(() => killPostmaster(paths.pgdata)));
    await eventually(async () => ((await call(ports.statusPort, 'GET', '/readyz').catch(() => ({ status: 0 }))).status === 200 ? true : undefined), 120_000, 'readyz over TLS');
  });

  after(async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
  });

  it('archives the fenced primary\'s partial segment for the operator only', async () => {
    await query(ports.pgPort, 'postgres', secrets.superuserPassword, 'CREATE TABLE t AS SELECT g FROM generate_series(1, 10000) g');
    await writeCluster({ 'cnpg.io/fencedInstances': JSON.stringify(['itest-1']) });
    await handToPostgres(paths.configDir);
    const reply = await eventually(async () => {
      const r = await call(ports.statusPort, 'POST', '/pg/archive/partial', operator);
      return r.status === 400 && r.body.includes('NOT_FENCED') ? undefined : r;
    }, 120_000, 'the instance fenced');
    assert.equal(reply.status, 200, reply.body);
    const walName = (JSON.parse(reply.body) as { data: string }).data;
    assert.match(walName, /^[0-9A-F]{24}$/);
    const object = join(s3.bucketDir, path, 'itest', 'wals', walName.slice(0, 16), `${walName}.partial`);
    assert.equal((await stat(object)).size, 16 * 1024 * 1024, `${object} in the store`);
    // The hard link pgim archives from is gone again.
    await assert.rejects(stat(join(paths.pgdata, 'pg_wal', `${walName}.partial`)));

    assert.equal((await call(ports.statusPort, 'POST', '/pg/archive/partial')).status, 401, 'no client certificate');
    assert.equal((await call(ports.statusPort, 'POST', '/pg/archive/partial', stranger)).status, 503, 'a certificate that is not the operator\'s');
  });
});
