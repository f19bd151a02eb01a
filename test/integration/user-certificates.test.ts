import { strict as assert } from 'node:assert';
import { execFile, execFileSync } from 'node:child_process';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { eventually, freePort, handToPostgres } from '../../test-kit/env.js';
import { PgimProcess, pgimEntry, query } from '../../test-kit/pgim.js';
import { startLocalCluster, type LocalCluster } from '../support/cluster.js';

const run = promisify(execFile);
/** `cp -a` (fs.cp is experimental on Node 20). */
const cp = async (from: string, to: string): Promise<void> => {
  await mkdir(dirname(to), { recursive: true });
  await run('cp', ['-a', from, to]);
};

/**
 * spec.certificates with two separate test CAs: the server CA `s` issues the server certificate (replicas verify the
 * primary with it), the client CA `c` issues streaming_replica's certificate (ssl_ca_file: every client certificate
 * is verified against it). Each Secret is rotated live.
 */
describe('user-provided certificates (spec.certificates): a client CA distinct from the server CA (real PostgreSQL 15, real TLS)', function () {
  this.timeout(300_000);
  const secrets = { appPassword: 'uc-app-pw', superuserPassword: 'uc-su-pw' };
  const certificates = { serverCASecret: 's-ca', serverTLSSecret: 's-server', clientCASecret: 'c-ca', replicationTLSSecret: 'c-replication' };
  let cluster: LocalCluster;
  let thirdPort = 0;
  const secretsDir = (): string => join(cluster.configDir, 'secrets');
  const primary = (): LocalCluster['instances'][number] => cluster.instances[0]!;
  const replica = (): LocalCluster['instances'][number] => cluster.instances[1]!;
  /** `pgim certs --cluster <name>` into `out`: a CA `<name>-ca` and the `<name>-server` / `<name>-replication` pairs it issues. */
  const issue = (name: string, out: string): void => {
    execFileSync(process.execPath, [pgimEntry, 'certs', '--cluster', name, '--instances', '3', '--out', out], { encoding: 'utf8' });
  };
  const pem = (secret: string, key: string, dir = secretsDir()): Promise<string> => readFile(join(dir, secret, key), 'utf8');
  const serialOf = async (secret: string): Promise<string> => BigInt(`0x${new X509Certificate(await pem(secret, 'tls.crt')).serialNumber}`).toString();
  const su = <T extends Record<string, unknown>>(sql: string): Promise<T[]> => query<T>(primary().ports.pgPort, 'postgres', secrets.superuserPassword, sql);
  /** The serial (decimal) of the client certificate the streaming replica presented, once it streams. */
  const streamingClientSerial = async (): Promise<string> =>
    eventually(async () => {
      const rows = await su<{ serial: string }>("SELECT s.client_serial::text AS serial FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming'");
      return rows[0]?.serial;
    }, 60_000, 'a streaming replica');
  /** Drops the walsender so the replica connects again, with whatever its files hold now. */
  const reconnectReplica = async (): Promise<void> => {
    await su('SELECT pg_terminate_backend(pid) FROM pg_stat_replication');
  };
  /** The serial the primary serves (openssl's own STARTTLS for PostgreSQL), verified against `caFile`. */
  const servedSerial = (caFile: string): string => {
    const out = execFileSync('openssl', ['s_client', '-starttls', 'postgres', '-connect', `127.0.0.1:${String(primary().ports.pgPort)}`, '-CAfile', caFile, '-verify_return_error'], {
      input: '', encoding: 'utf8', stdio: ['pipe', 'pipe', 'ignore'],
    });
    const cert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(out)?.[0] ?? '';
    return new X509Certificate(cert).serialNumber;
  };
  let clients = 0;
  /** psql as streaming_replica with the given certificate, verifying the server against `ca`. */
  const asReplicationUser = async (cert: { crt: string; key: string }, ca: string): Promise<void> => {
    const dir = join(cluster.base, `client-${String(++clients)}`);
    await mkdir(dir, { mode: 0o700 });
    await writeFile(join(dir, 'ca.crt'), ca);
    await writeFile(join(dir, 'tls.crt'), cert.crt);
    await writeFile(join(dir, 'tls.key'), cert.key, { mode: 0o600 });
    const conninfo = `host=127.0.0.1 port=${String(primary().ports.pgPort)} user=streaming_replica dbname=postgres sslmode=verify-ca sslrootcert=${join(dir, 'ca.crt')} sslcert=${join(dir, 'tls.crt')} sslkey=${join(dir, 'tls.key')} connect_timeout=10`;
    try {
      await run('psql', [conninfo, '-Atc', 'SELECT 1'], { timeout: 30_000 });
    } catch (err) {
      throw new Error((err as { stderr?: string }).stderr ?? String(err));
    }
  };
  const pair = async (secret: string, dir = secretsDir()): Promise<{ crt: string; key: string }> => ({ crt: await pem(secret, 'tls.crt', dir), key: await pem(secret, 'tls.key', dir) });
  /** Replaces a Secret folder's files with another's (what a Secret update does), handed to postgres. */
  const replaceSecret = async (target: string, source: string, from: string): Promise<void> => {
    for (const file of await readdir(join(from, source))) {
      if (file === 'ca.key' && !(await readdir(join(secretsDir(), target))).includes('ca.key')) continue;
      await cp(join(from, source, file), join(secretsDir(), target, `.${file}.new`));
    }
    await handToPostgres(join(secretsDir(), target));
    for (const file of await readdir(join(secretsDir(), target))) {
      if (file.startsWith('.') && file.endsWith('.new')) await run('mv', [join(secretsDir(), target, file), join(secretsDir(), target, file.slice(1, -4))]);
    }
  };
  const postmasterPid = async (): Promise<number> => ((await (await fetch(`${primary().pgim!.statusUrl}/pg/status`)).json()) as { postmasterPid: number }).postmasterPid;
  let postmasterBefore = 0;
  const cleanup: (() => Promise<unknown>)[] = [];

  before(async () => {
    cluster = await startLocalCluster(
      2,
      // instances: 3 gives the third name (the misconfigured replica below) a place in the topology.
      { enableSuperuserAccess: true, smartShutdownTimeout: 1, stopDelay: 20, spec: { instances: 3, certificates } },
      secrets,
      async (configDir) => {
        const out = join(configDir, 'secrets');
        issue('s', out);
        issue('c', out);
        thirdPort = await freePort();
        await writeFile(join(configDir, 'configmaps', 'itest-hosts', 'itest-3'), `127.0.0.1:${String(thirdPort)}`);
      },
    );
    cleanup.push(() => cluster.stop());
    postmasterBefore = await postmasterPid();
  });

  after(async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
  });

  it('the replica streams with a certificate from the client CA; ssl_ca_file is the client CA, sslrootcert the server CA', async () => {
    assert.equal(await streamingClientSerial(), await serialOf('c-replication'));
    const custom = await readFile(join(primary().paths.pgdata, 'custom.conf'), 'utf8');
    const caFile = /^ssl_ca_file = '(.+)'$/m.exec(custom)?.[1] ?? '';
    assert.equal(await readFile(caFile, 'utf8'), await pem('c-ca', 'ca.crt'), 'ssl_ca_file holds the client CA');
    assert.equal(await readFile(join(replica().paths.runtimeDir, 'certificates', 'server-ca.crt'), 'utf8'), await pem('s-ca', 'ca.crt'), "the replica's sslrootcert holds the server CA");
    assert.match(await readFile(join(replica().paths.pgdata, 'override.conf'), 'utf8'), /sslmode=verify-full/);
    assert.equal(servedSerial(join(secretsDir(), 's-ca', 'ca.crt')), new X509Certificate(await pem('s-server', 'tls.crt')).serialNumber);
  });

  it('refuses a client certificate signed by the server CA, accepts the one signed by the client CA', async () => {
    const serverCa = await pem('s-ca', 'ca.crt');
    await assert.rejects(asReplicationUser(await pair('s-replication'), serverCa), /certificate|unknown ca|alert/i);
    await asReplicationUser(await pair('c-replication'), serverCa);
  });

  it('a replica whose server CA did not issue the primary certificate refuses the primary, naming the certificate problem', async () => {
    // itest-3 reads a copy of the configuration where the server CA (and its own server certificate) come from `x`.
    const copy = join(cluster.base, 'config-3');
    await cp(cluster.configDir, copy);
    issue('x', join(copy, 'secrets'));
    const yaml = parse(await readFile(join(copy, 'cluster.yaml'), 'utf8')) as { spec: { certificates: Record<string, string> } };
    yaml.spec.certificates = { ...certificates, serverCASecret: 'x-ca', serverTLSSecret: 'x-server' };
    await writeFile(join(copy, 'cluster.yaml'), stringify(yaml));
    await handToPostgres(copy);
    const paths = { configDir: copy, pgdata: join(cluster.base, 'pgdata-3'), runtimeDir: join(cluster.base, 'runtime-3') };
    const third = new PgimProcess('run', paths, { pgPort: thirdPort, statusPort: await freePort(), metricsPort: await freePort() }, ['--pod-name', 'itest-3']);
    try {
      await third.waitForLog(/the primary does not answer yet: .*(self[- ]signed|unable to (get|verify)|certificate)/i, 60_000);
      // libpq (what pg_basebackup and the WAL receiver use) refuses it too, with the replica's own files.
      const certs = join(paths.runtimeDir, 'certificates');
      await assert.rejects(asReplicationUser(await pair('c-replication'), await readFile(join(certs, 'server-ca.crt'), 'utf8')), /certificate verify failed/);
      assert.deepEqual(await readdir(paths.pgdata).catch(() => []), [], 'nothing cloned');
    } finally {
      await third.stop();
    }
  });

  it('rotates serverTLSSecret live: the new certificate is served, the replica keeps streaming', async () => {
    const before = new X509Certificate(await pem('s-server', 'tls.crt')).serialNumber;
    const fresh = join(cluster.base, 'fresh-server');
    await cp(join(secretsDir(), 's-ca'), join(fresh, 's-ca'));
    issue('s', fresh);
    await replaceSecret('s-server', 's-server', fresh);
    const after = new X509Certificate(await pem('s-server', 'tls.crt')).serialNumber;
    assert.notEqual(after, before);
    await eventually(async () => Promise.resolve(servedSerial(join(secretsDir(), 's-ca', 'ca.crt')) === after ? true : undefined), 30_000, 'the new server certificate served');
    await reconnectReplica();
    assert.equal(await streamingClientSerial(), await serialOf('c-replication'));
  });

  it('rotates replicationTLSSecret live: the replica reconnects with the new certificate', async () => {
    const fresh = join(cluster.base, 'fresh-replication');
    await cp(join(secretsDir(), 'c-ca'), join(fresh, 'c-ca'));
    issue('c', fresh);
    await replaceSecret('c-replication', 'c-replication', fresh);
    const serial = await serialOf('c-replication');
    await eventually(async () => ((await readFile(join(replica().paths.runtimeDir, 'certificates', 'streaming_replica.crt'), 'utf8')) === (await pem('c-replication', 'tls.crt')) ? true : undefined), 30_000, "the replica's new certificate file");
    await reconnectReplica();
    await eventually(async () => ((await streamingClientSerial()) === serial ? true : undefined), 60_000, 'streaming with the new certificate');
  });

  it('rotates clientCASecret and serverCASecret live (new CAs, their certificates with them): old client CA refused, replica streams, no restart', async () => {
    const fresh = join(cluster.base, 'fresh-cas');
    issue('s', fresh);
    issue('c', fresh);
    const oldClient = await pair('c-replication');
    await replaceSecret('c-ca', 'c-ca', fresh);
    await replaceSecret('c-replication', 'c-replication', fresh);
    await replaceSecret('s-ca', 's-ca', fresh);
    await replaceSecret('s-server', 's-server', fresh);
    const serverCa = await pem('s-ca', 'ca.crt');
    const newServerSerial = new X509Certificate(await pem('s-server', 'tls.crt')).serialNumber;
    await eventually(async () => Promise.resolve(servedSerial(join(secretsDir(), 's-ca', 'ca.crt')) === newServerSerial ? true : undefined), 30_000, 'the certificate of the new server CA served');
    await eventually(
      async () => ((await readFile(join(replica().paths.runtimeDir, 'certificates', 'server-ca.crt'), 'utf8')) === serverCa ? true : undefined),
      30_000,
      "the replica's new server CA",
    );
    await eventually(async () => {
      try {
        await asReplicationUser(oldClient, serverCa);
        return undefined;
      } catch (err) {
        return /certificate|unknown ca|alert/i.test((err as Error).message) ? true : undefined;
      }
    }, 30_000, 'the old client CA refused');
    await asReplicationUser(await pair('c-replication'), serverCa);
    const serial = await serialOf('c-replication');
    await reconnectReplica();
    await eventually(async () => ((await streamingClientSerial()) === serial ? true : undefined), 60_000, 'streaming under both new CAs');
    assert.equal(await postmasterPid(), postmasterBefore, 'every rotation applied by a reload');
    await rm(fresh, { recursive: true, force: true });
  });
});
