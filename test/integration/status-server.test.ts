import { strict as assert } from 'node:assert';
import { execFile, execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { writeClusterYaml, writeConfigDir, type TestClusterOptions } from '../../test-kit/config.js';
import { eventually, freePort, handToPostgres, makeTempDir, removeTempDir, sleep } from '../../test-kit/env.js';
import { killPostmaster, pgimEntry, PgimProcess, query, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';

const run = promisify(execFile);

interface Pair {
  cert: Buffer;
  key: Buffer;
  certFile: string;
  fingerprint: string;
}

const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** SHA-256 of the DER SubjectPublicKeyInfo, computed by openssl alone: CNPG's fingerprint, not pgim's code. */
function spkiFingerprint(certFile: string): string {
  const out = execFileSync('sh', ['-c', `openssl x509 -in '${certFile}' -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum`], { encoding: 'utf8' });
  return out.split(' ')[0] ?? '';
}

function pairFrom(dir: string, name: string): Pair {
  const certFile = join(dir, `${name}.crt`);
  return { cert: readFileSync(certFile), key: readFileSync(join(dir, `${name}.key`)), certFile, fingerprint: spkiFingerprint(certFile) };
}

/** A self-signed P-256 pair (the operator's in-memory client certificate is self-signed too). */
function selfSigned(dir: string, name: string, cn: string): Pair {
  execFileSync('openssl', ['req', '-x509', ...ec, '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`), '-subj', `/CN=${cn}`, '-days', '2'], { stdio: 'ignore' });
  return pairFrom(dir, name);
}

/** A CA as the cluster's `<cluster>-ca` Secret holds one. */
function makeCa(dir: string): Pair {
  execFileSync('openssl', ['req', '-x509', ...ec, '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt'), '-subj', '/CN=itest-ca', '-days', '2',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], { stdio: 'ignore' });
  return pairFrom(dir, 'ca');
}

/** A leaf signed by the CA, optionally with a subjectAltName. */
function signed(dir: string, name: string, cn: string, san?: string): Pair {
  const csr = join(dir, `${name}.csr`);
  execFileSync('openssl', ['req', '-new', ...ec, '-keyout', join(dir, `${name}.key`), '-out', csr, '-subj', `/CN=${cn}`], { stdio: 'ignore' });
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, san === undefined ? '' : `subjectAltName=${san}\n`);
  execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', join(dir, 'ca.crt'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial', '-out', join(dir, `${name}.crt`),
    '-days', '2', '-extfile', ext], { stdio: 'ignore' });
  return pairFrom(dir, name);
}

interface Reply {
  status: number;
  body: string;
}

function get(port: number, path: string, client?: Pair, ca?: Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: '127.0.0.1', port, path, agent: false, minVersion: 'TLSv1.3',
      ...(ca ? { ca } : { rejectUnauthorized: false }),
      ...(client ? { cert: client.cert, key: client.key } : {}),
    }, (res) => {
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

function servedCertificate(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerX509Certificate()?.fingerprint256 ?? '');
      socket.destroy();
    });
    socket.on('error', reject);
  });
}

describe('status server over TLS 1.3: probes, /pg/status, operator pin, rotation, CLI (real PostgreSQL 15)', function () {
  this.timeout(120_000);
  const secrets = { appPassword: 'app-S3NTINEL-status', superuserPassword: 'su-S3NTINEL-status' };
  let base: string;
  let paths: PgimPaths;
  let ports: PgimPorts;
  let pgim: PgimProcess;
  let cluster: TestClusterOptions = {};
  let server1: Pair;
  let server2: Pair;
  let operator: Pair;
  let stranger: Pair;

  let ca: Pair;
  const writeSecret = async (name: string, files: Record<string, Buffer>): Promise<void> => {
    // Written like a projected Secret update: new files, then atomic renames.
    const dir = join(paths.configDir, 'secrets', name);
    await mkdir(dir, { recursive: true });
    for (const [key, bytes] of Object.entries(files)) await writeFile(join(dir, `.${key}.new`), bytes);
    await handToPostgres(dir);
    for (const key of Object.keys(files)) await rename(join(dir, `.${key}.new`), join(dir, key));
  };
  const writeServerSecret = (pair: Pair): Promise<void> => writeSecret('itest-server', { 'tls.key': pair.key, 'tls.crt': pair.cert });
  const clusterWithStatus = (fingerprint: string): Record<string, unknown> => ({ status: { operatorCertificateFingerprint: fingerprint } });

  before(async () => {
    base = await makeTempDir('status');
    paths = { configDir: join(base, 'config'), pgdata: join(base, 'pgdata'), runtimeDir: join(base, 'runtime') };
    ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
    const certs = join(base, 'certs');
    await mkdir(certs);
    ca = makeCa(certs);
    server1 = signed(certs, 'server1', 'itest-rw', 'IP:127.0.0.1');
    server2 = signed(certs, 'server2', 'itest-rw', 'IP:127.0.0.1');
    const replication = signed(certs, 'replication', 'streaming_replica');
    operator = selfSigned(certs, 'operator', 'cnpg-operator');
    stranger = selfSigned(certs, 'stranger', 'cnpg-operator');
    cluster = { spec: { probes: { readiness: { type: 'query' }, startup: { type: 'streaming', maximumLag: '16Mi' } } } };
    await writeConfigDir(paths.configDir, cluster, secrets);
    await writeServerSecret(server1);
    await writeSecret('itest-ca', { 'ca.crt': ca.cert });
    await writeSecret('itest-replication', { 'tls.crt': replication.cert, 'tls.key': replication.key });
    await handToPostgres(paths.configDir);
    pgim = new PgimProcess('run', paths, ports, ['--status-tls']);
    await eventually(async () => ((await get(ports.statusPort, '/readyz').catch(() => ({ status: 0 }))).status === 200 ? true : undefined), 60_000, 'readyz over TLS');
  });

  after(async () => {
    const exit = await pgim.stop().catch(() => undefined);
    if (!exit) await killPostmaster(paths.pgdata);
    await removeTempDir(base);
  });

  it('serves the probes over TLS 1.3 only, with the strategies from spec.probes', async () => {
    assert.deepEqual(await get(ports.statusPort, '/healthz'), { status: 200, body: 'OK' });
    assert.deepEqual(await get(ports.statusPort, '/readyz'), { status: 200, body: 'OK' }, 'query strategy');
    assert.deepEqual(await get(ports.statusPort, '/startupz'), { status: 200, body: 'OK' }, 'streaming strategy passes on a primary');
    assert.deepEqual(await get(ports.statusPort, '/failsafe'), { status: 200, body: 'OK' });
    await assert.rejects(fetch(`http://127.0.0.1:${ports.statusPort}/healthz`), 'no plain HTTP on a TLS port');
    await assert.rejects(
      new Promise((resolve, reject) => {
        const socket = tlsConnect({ host: '127.0.0.1', port: ports.statusPort, rejectUnauthorized: false, maxVersion: 'TLSv1.2' }, () => {
          resolve(undefined);
        });
        socket.on('error', reject);
      }),
    );
  });

  it("answers /pg/status with CNPG's PostgresqlStatus shape and no secret anywhere (c5 #45)", async () => {
    const res = await get(ports.statusPort, '/pg/status');
    assert.equal(res.status, 200);
    const doc = JSON.parse(res.body) as Record<string, unknown>;
    for (const key of ['systemID', 'isPrimary', 'timeLineID', 'currentLsn', 'currentWAL', 'pendingRestart', 'pendingRestartForDecrease', 'isWalReceiverActive',
      'isPgRewindRunning', 'mightBeUnavailable', 'isArchivingWAL', 'replayPaused', 'node', 'pod', 'loadedConfigurationHash', 'replicationInfo',
      'replicationSlotsInfo', 'pgStatBasebackupsInfo', 'readyWalFiles', 'executableHash', 'instanceManagerVersion', 'instanceArch',
      'isInstanceManagerUpgrading', 'sessionID', 'isPodReady']) {
      assert.ok(key in doc, key);
    }
    assert.equal(doc.isPrimary, true);
    assert.equal(doc.timeLineID, 1);
    assert.match(String(doc.currentLsn), /^[0-9A-F]+\/[0-9A-F]+$/);
    for (const path of ['/pg/status', '/readyz', '/startupz', '/healthz', '/pg/controldata']) {
      const body = (await get(ports.statusPort, path, operator)).body;
      assert.ok(!body.includes('S3NTINEL'), `no password in ${path}`);
      assert.ok(!body.includes('BEGIN'), `no key material in ${path}`);
    }
  });

  it('pins /pg/controldata to the operator certificate in status.operatorCertificateFingerprint (c5 #46)', async () => {
    let res = await get(ports.statusPort, '/pg/controldata');
    assert.deepEqual(res, { status: 401, body: 'client certificate required\n' });
    res = await get(ports.statusPort, '/pg/controldata', operator);
    assert.deepEqual(res, { status: 503, body: 'operator certificate not registered\n' });
    await writeClusterYamlWithStatus(paths.configDir, cluster, clusterWithStatus(operator.fingerprint));
    await eventually(async () => ((await get(ports.statusPort, '/pg/controldata', operator)).status === 200 ? true : undefined), 10_000, 'the fingerprint to be read');
    res = await get(ports.statusPort, '/pg/controldata', operator);
    const data = (JSON.parse(res.body) as { data: string }).data;
    assert.match(data, /^Database system identifier:\s+\d+$/m);
    assert.deepEqual(await get(ports.statusPort, '/pg/controldata', stranger), { status: 503, body: 'operator certificate not recognized\n' });
  });

  it('reloads the server certificate when its Secret changes, without a restart', async () => {
    const pid = pgim.pid;
    const before = (JSON.parse((await get(ports.statusPort, '/pg/status')).body) as { postmasterPid: number }).postmasterPid;
    assert.equal(await servedCertificate(ports.statusPort), new X509Certificate(server1.cert).fingerprint256);
    await writeServerSecret(server2);
    const started = Date.now();
    await eventually(async () => ((await servedCertificate(ports.statusPort)) === new X509Certificate(server2.cert).fingerprint256 ? true : undefined), 10_000, 'the new certificate');
    console.log(`      Secret change -> new certificate served: ${Date.now() - started} ms`);
    assert.equal(pgim.pid, pid);
    assert.equal((JSON.parse((await get(ports.statusPort, '/pg/status')).body) as { postmasterPid: number }).postmasterPid, before);
    // A broken pair is refused; the server keeps the good one.
    const dir = join(paths.configDir, 'secrets', 'itest-server');
    await writeFile(join(dir, 'tls.key'), server1.key);
    await sleep(2000);
    assert.equal(await servedCertificate(ports.statusPort), new X509Certificate(server2.cert).fingerprint256);
    await eventually(async () => Promise.resolve(pgim.lines.some((l) => l.includes('tls.key does not belong to tls.crt')) ? true : undefined), 5_000, 'the refusal to be logged');
    await writeFile(join(dir, 'tls.key'), server2.key);
  });

  it('`pgim status` prints a readable table over TLS, and --json the raw document', async () => {
    const url = `https://127.0.0.1:${ports.statusPort}/pg/status`;
    const table = await run(process.execPath, [pgimEntry, 'status', '--url', url, '--cacert', ca.certFile], { encoding: 'utf8' });
    assert.match(table.stdout, /^Role\s+primary$/m);
    assert.match(table.stdout, /^Timeline\s+1$/m);
    assert.match(table.stdout, /^Current LSN\s+[0-9A-F]+\/[0-9A-F]+$/m);
    assert.match(table.stdout, /^Pending restart\s+no$/m);
    assert.match(table.stdout, /^Restarts\s+0$/m);
    assert.match(table.stdout, /^pgim uptime\s+\d/m);
    assert.match(table.stdout, /^Replication peers: none$/m);
    const json = await run(process.execPath, [pgimEntry, 'status', '--url', url, '--cacert', ca.certFile, '--json'], { encoding: 'utf8' });
    assert.equal((JSON.parse(json.stdout) as { isPrimary: boolean }).isPrimary, true);
    await assert.rejects(run(process.execPath, [pgimEntry, 'status', '--url', url], { encoding: 'utf8' }), /cannot reach/, 'an unknown CA is refused');
  });

  it('keeps one session for its periodic probes instead of a new one each time, and a new one after a postmaster restart', async () => {
    const pgimSessions = async (): Promise<number[]> =>
      (await query<{ pid: number }>(ports.pgPort, 'app', secrets.appPassword, "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgim'")).map((r) => r.pid);
    // The held session stays open between the periodic probes (an idle primary's restart check runs every 30 s): a
    // session opened per probe would be gone, or a new backend, 6 s later.
    const held = await eventually(async () => {
      const before = await pgimSessions();
      await sleep(6000);
      const after = await pgimSessions();
      return after.find((pid) => before.includes(pid));
    }, 60_000, 'a pgim session that outlives two restart checks');

    await killPostmaster(paths.pgdata);
    await eventually(async () => ((await get(ports.statusPort, '/readyz').catch(() => ({ status: 0 }))).status === 200 ? true : undefined), 60_000, 'readyz after the restart');
    assert.equal((await get(ports.statusPort, '/pg/status', operator)).status, 200, 'the first request after the restart is answered');
    await eventually(async () => {
      const before = await pgimSessions();
      await sleep(6000);
      return (await pgimSessions()).some((pid) => pid !== held && before.includes(pid)) ? true : undefined;
    }, 120_000, 'a new held session after the restart (opened by the next probe)');
  });
});

/** cluster.yaml with a `status` stanza, as the operator would have written it. */
async function writeClusterYamlWithStatus(dir: string, options: TestClusterOptions, status: Record<string, unknown>): Promise<void> {
  await writeClusterYaml(dir, options);
  const path = join(dir, 'cluster.yaml');
  const text = await readFile(path, 'utf8');
  await writeFile(`${path}.tmp`, `${text}${stringify(status)}`);
  await rename(`${path}.tmp`, path);
}
