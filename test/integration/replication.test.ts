import 'reflect-metadata';
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, webcrypto, X509Certificate } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { writeConfigDir } from '../../test-kit/config.js';
import { eventually, freePort, handToPostgres, makeTempDir, removeTempDir } from '../../test-kit/env.js';
import { killPostmaster, PgimProcess, pgimEntry, query, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';

x509.cryptoProvider.set(webcrypto as never);

const secrets = { appPassword: 'repl-app-pw', superuserPassword: 'repl-su-pw' };

interface Instance {
  name: string;
  paths: PgimPaths;
  ports: PgimPorts;
  pgim?: PgimProcess;
}

describe('TLS and streaming replication: a 3-instance cluster on 127.0.0.1 (real PostgreSQL, real TLS)', function () {
  let base: string;
  let configDir: string;
  const instances: Instance[] = [];
  const secretsDir = (): string => join(configDir, 'secrets');

  const start = (i: Instance): PgimProcess => {
    i.pgim = new PgimProcess('run', i.paths, i.ports, ['--pod-name', i.name]);
    return i.pgim;
  };
  const primary = (): Instance => instances[0]!;
  const replicas = (): Instance[] => instances.slice(1);
  const certs = (out: string, cluster = 'itest'): string =>
    execFileSync(process.execPath, [pgimEntry, 'certs', '--cluster', cluster, '--instances', '3', '--out', out], { encoding: 'utf8' });

  interface ClientTls {
    ca: string;
    cert?: string;
    key?: string;
    maxVersion?: string;
  }
  let clientFiles = 0;
  /** Connects as streaming_replica to the primary's `postgres` database with libpq (psql), as a replica would. */
  const asReplicationUser = async (tls: ClientTls | false): Promise<void> => {
    const dir = join(base, `client-${++clientFiles}`);
    await mkdir(dir, { mode: 0o700 });
    const params = [`host=127.0.0.1`, `port=${primary().ports.pgPort}`, 'user=streaming_replica', 'dbname=postgres', 'connect_timeout=5'];
    if (tls === false) params.push('sslmode=disable', 'password=guess');
    else {
      await writeFile(join(dir, 'ca.crt'), tls.ca);
      params.push('sslmode=verify-ca', `sslrootcert=${join(dir, 'ca.crt')}`, `sslcert=${join(dir, 'none.crt')}`, `sslkey=${join(dir, 'none.key')}`);
      if (tls.cert !== undefined && tls.key !== undefined) {
        await writeFile(join(dir, 'tls.crt'), tls.cert);
        await writeFile(join(dir, 'tls.key'), tls.key, { mode: 0o600 });
        params.splice(-2, 2, `sslcert=${join(dir, 'tls.crt')}`, `sslkey=${join(dir, 'tls.key')}`);
      }
      if (tls.maxVersion !== undefined) params.push(`ssl_max_protocol_version=${tls.maxVersion}`);
    }
    try {
      execFileSync('psql', [params.join(' '), '-Atc', 'SELECT 1'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 15_000 });
    } catch (err) {
      throw new Error((err as { stderr?: string }).stderr ?? String(err));
    }
  };
  const replicationMaterial = async (): Promise<{ cert: string; key: string; ca: string }> => ({
    cert: await readFile(join(secretsDir(), 'itest-replication', 'tls.crt'), 'utf8'),
    key: await readFile(join(secretsDir(), 'itest-replication', 'tls.key'), 'utf8'),
    ca: await readFile(join(secretsDir(), 'itest-ca', 'ca.crt'), 'utf8'),
  });

  before(async function () {
    this.timeout(180_000);
    base = await makeTempDir('repl');
    configDir = join(base, 'config');
    await writeConfigDir(configDir, { smartShutdownTimeout: 1, stopDelay: 20, spec: { instances: 3 } }, secrets);
    await mkdir(join(configDir, 'configmaps', 'itest-hosts'), { recursive: true });
    for (let n = 1; n <= 3; n++) {
      const name = `itest-${n}`;
      const ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
      instances.push({ name, ports, paths: { configDir, pgdata: join(base, `pgdata-${n}`), runtimeDir: join(base, `runtime-${n}`) } });
      await writeFile(join(configDir, 'configmaps', 'itest-hosts', name), `127.0.0.1:${ports.pgPort}`);
    }
    certs(secretsDir());
    await handToPostgres(configDir);
    await start(primary()).waitReady();
    for (const replica of replicas()) start(replica);
    for (const replica of replicas()) await replica.pgim!.waitReady(120_000);
  });

  after(async () => {
    for (const i of instances) {
      await i.pgim?.stop().catch(() => killPostmaster(i.paths.pgdata));
    }
    await removeTempDir(base);
  });

  it('streams to both replicas over TLS 1.3 with certificate authentication', async () => {
    const status = await eventually(async () => {
      const doc = (await (await fetch(`${primary().pgim!.statusUrl}/pg/status`)).json()) as { replicationInfo?: { applicationName: string; state: string }[] };
      const streaming = (doc.replicationInfo ?? []).filter((r) => r.state === 'streaming');
      return streaming.length === 2 ? doc : undefined;
    }, 60_000, 'two streaming replicas in /pg/status');
    assert.deepEqual(status.replicationInfo?.map((r) => r.applicationName).sort(), ['itest-2', 'itest-3']);
    // As the OS user postgres runs as, over the socket (peer auth): pg_stat_ssl of the walsenders.
    const ssl = execFileSync('psql', ['-h', join(primary().paths.runtimeDir, 'run'), '-p', String(primary().ports.pgPort), '-U', 'postgres', '-d', 'postgres', '-Atc',
      "SELECT r.application_name || ':' || s.ssl || ':' || s.version || ':' || s.client_dn FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) ORDER BY 1"],
    { encoding: 'utf8', env: { ...process.env, PGUSER: 'postgres' }, uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })) }).trim().split('\n');
    assert.deepEqual(ssl, ['itest-2:true:TLSv1.3:/CN=streaming_replica', 'itest-3:true:TLSv1.3:/CN=streaming_replica']);
  });

  it('replicates a committed row to both replicas', async () => {
    await query(primary().ports.pgPort, 'app', secrets.appPassword, "CREATE TABLE replicated (v text); INSERT INTO replicated VALUES ('hello')");
    for (const replica of replicas()) {
      await eventually(async () => {
        const rows = await query<{ v: string; standby: boolean }>(replica.ports.pgPort, 'app', secrets.appPassword, 'SELECT v, pg_is_in_recovery() AS standby FROM replicated');
        return rows.length === 1 ? rows : undefined;
      }, 30_000, `the row on ${replica.name}`).then((rows) => {
        assert.deepEqual(rows, [{ v: 'hello', standby: true }]);
      });
      const doc = (await (await fetch(`${replica.pgim!.statusUrl}/pg/status`)).json()) as { isPrimary: boolean; isWalReceiverActive: boolean; receivedLsn?: string };
      assert.equal(doc.isPrimary, false);
      assert.equal(doc.isWalReceiverActive, true);
      assert.ok(doc.receivedLsn);
    }
  });

  it('exposes when each certificate expires (pgim_certificate_expiry_timestamp_seconds)', async () => {
    const text = await (await fetch(`http://127.0.0.1:${primary().ports.metricsPort}/metrics`)).text();
    const expiry = Number(/^pgim_certificate_expiry_timestamp_seconds\{secret="itest-server"\} (\S+)$/m.exec(text)?.[1]);
    const notAfter = new X509Certificate(await readFile(join(secretsDir(), 'itest-server', 'tls.crt'))).validTo;
    assert.equal(expiry, new Date(notAfter).getTime() / 1000);
    assert.match(text, /^pgim_certificate_expiry_timestamp_seconds\{secret="itest-replication"\} \d+/m);
  });

  it('keeps an HA slot per replica on the primary, in use', async () => {
    const override = await readFile(join(replicas()[0]!.paths.pgdata, 'override.conf'), 'utf8');
    assert.match(override, /^primary_slot_name = '_cnpg_itest_2'$/m);
    assert.match(override, /sslmode=verify-full/, '127.0.0.1 is in the server certificate: the hostname is checked');
    assert.doesNotMatch(override, /password/);
  });

  it('refuses streaming_replica without a client certificate', async () => {
    const material = await replicationMaterial();
    await assert.rejects(asReplicationUser({ ca: material.ca }), /certificate/);
  });

  it('refuses streaming_replica with a certificate from another CA', async () => {
    const material = await replicationMaterial();
    const otherCa = join(base, 'other-ca');
    certs(otherCa, 'other');
    await assert.rejects(
      asReplicationUser({
        ca: material.ca,
        cert: await readFile(join(otherCa, 'other-replication', 'tls.crt'), 'utf8'),
        key: await readFile(join(otherCa, 'other-replication', 'tls.key'), 'utf8'),
      }),
      /certificate|unknown ca|alert/i,
    );
  });

  it('refuses streaming_replica with an expired certificate from the right CA', async () => {
    const material = await replicationMaterial();
    const caKey = createPrivateKey(await readFile(join(secretsDir(), 'itest-ca', 'ca.key'), 'utf8'));
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const signingKey = await webcrypto.subtle.importKey('pkcs8', caKey.export({ type: 'pkcs8', format: 'der' }), alg, false, ['sign']);
    const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']));
    const expired = await x509.X509CertificateGenerator.create({
      serialNumber: '0abc', subject: 'CN=streaming_replica', issuer: new X509Certificate(material.ca).subject,
      notBefore: new Date(Date.now() - 3 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000),
      signingKey, publicKey: keys.publicKey, signingAlgorithm: alg,
    });
    const keyDer = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
    await assert.rejects(
      asReplicationUser({ ca: material.ca, cert: expired.toString('pem'), key: `-----BEGIN PRIVATE KEY-----\n${keyDer}\n-----END PRIVATE KEY-----\n` }),
      /certificate|expired|alert/i,
    );
  });

  it('refuses streaming_replica by password without TLS', async () => {
    await assert.rejects(asReplicationUser(false), /password authentication failed|no pg_hba\.conf entry/);
  });

  it('accepts streaming_replica with its own certificate (so the refusals are about the certificate)', async () => {
    const material = await replicationMaterial();
    await asReplicationUser({ ca: material.ca, cert: material.cert, key: material.key });
  });

  it('refuses a TLS 1.2-only client', async () => {
    const material = await replicationMaterial();
    await assert.rejects(
      asReplicationUser({ ca: material.ca, cert: material.cert, key: material.key, maxVersion: 'TLSv1.2' }),
      /protocol|version|alert/i,
    );
  });

  it('rotates the server certificate without a restart: the new serial is what clients see', async () => {
    const served = (): string => {
      const out = execFileSync('openssl', ['s_client', '-starttls', 'postgres', '-connect', `127.0.0.1:${primary().ports.pgPort}`, '-servername', 'localhost'], {
        input: '', encoding: 'utf8', stdio: ['pipe', 'pipe', 'ignore'],
      });
      const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(out)?.[0] ?? '';
      return new X509Certificate(pem).serialNumber;
    };
    const before = served();
    const postmasterBefore = ((await (await fetch(`${primary().pgim!.statusUrl}/pg/status`)).json()) as { postmasterPid: number }).postmasterPid;
    await rm(join(secretsDir(), 'itest-server'), { recursive: true });
    certs(secretsDir());
    await handToPostgres(secretsDir());
    const fresh = new X509Certificate(await readFile(join(secretsDir(), 'itest-server', 'tls.crt'))).serialNumber;
    assert.notEqual(fresh, before);
    await eventually(async () => Promise.resolve(served() === fresh ? true : undefined), 10_000, 'the new serial served');
    const postmasterAfter = ((await (await fetch(`${primary().pgim!.statusUrl}/pg/status`)).json()) as { postmasterPid: number }).postmasterPid;
    assert.equal(postmasterAfter, postmasterBefore, 'no restart');
  });

  it("resumes streaming after a replica's pgim is killed and started again, without a new base backup", async () => {
    const replica = replicas()[1]!;
    replica.pgim!.signal('SIGKILL');
    await replica.pgim!.waitExit();
    await query(primary().ports.pgPort, 'app', secrets.appPassword, "INSERT INTO replicated VALUES ('while away')");
    const again = start(replica);
    await again.waitReady();
    await eventually(async () => {
      const rows = await query<{ n: string }>(replica.ports.pgPort, 'app', secrets.appPassword, 'SELECT count(*) AS n FROM replicated');
      return rows[0]?.n === '2' ? true : undefined;
    }, 30_000, 'the row written while the replica was away');
    assert.ok(!again.lines.some((l) => l.includes('pg_basebackup')), 'no new base backup');
  });
});
