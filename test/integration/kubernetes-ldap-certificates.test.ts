import { strict as assert } from 'node:assert';
import { execFile, execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { eventually, handToPostgres, makeTempDir, removeTempDir } from '../../test-kit/env.js';
import { pgimEntry, query, type PgimProcess } from '../../test-kit/pgim.js';
import { requireSlapd, Slapd } from '../../test-kit/slapd.js';
import type { TestApiServer } from '../k8s/apiserver.js';
import { getCluster, listEvents, putSecret } from '../k8s/fixtures.js';
import { apiServerFor, crdVariants, releaseAllApiServers, requireCrdFile, requireK8sBinaries } from '../k8s/harness.js';
import { K8sInstance } from '../k8s/instance.js';

const run = promisify(execFile);

/**
 * Kubernetes mode reads spec.postgresql.ldap's bind password and spec.certificates' Secrets from the API server (the
 * shipped Role plus those Secret names, as CNPG's Role lists them) and follows each one: a Secret update is applied
 * live, as in files mode. CloudNativePG's real Cluster CRD; a real OpenLDAP slapd.
 */
describe('Kubernetes mode: LDAP bind password and user-provided certificate Secrets (real kube-apiserver, CNPG CRD, OpenLDAP)', function () {
  this.timeout(600_000);
  const marker = `S3NTINEL-${Math.random().toString(36).slice(2, 10)}`;
  const clusterName = 'dir';
  const superuserPassword = 'k8s-ldap-su-pw';
  const alice = { uid: 'alice', password: 'alice-k8s-pw' };
  const names = { serverCASecret: 'srv-ca', serverTLSSecret: 'srv-tls', clientCASecret: 'cli-ca', replicationTLSSecret: 'cli-replication' };
  const cleanup: (() => Promise<unknown>)[] = [];
  let server: TestApiServer;
  let instance: K8sInstance;
  let pgim: PgimProcess;
  let slapd: Slapd;
  let base: string;
  const cnpg = crdVariants.find((v) => v.key === 'cnpg');

  const issue = (name: string, out: string): void => {
    execFileSync(process.execPath, [pgimEntry, 'certs', '--cluster', name, '--instances', '1', '--out', out], { encoding: 'utf8' });
  };
  const pem = (dir: string, secret: string, key: string): Promise<string> => readFile(join(dir, secret, key), 'utf8');
  /** Puts `<name>-ca`'s ca.crt into the Secret `ca`, and `<name>-<leaf>`'s pair into the kubernetes.io/tls Secret `tls`. */
  const putCa = async (dir: string, from: string, ca: string): Promise<void> => {
    await putSecret(server, instance.namespace, ca, { 'ca.crt': await pem(dir, from, 'ca.crt') }, 'Opaque');
  };
  const putPair = async (dir: string, from: string, tls: string): Promise<void> => {
    await putSecret(server, instance.namespace, tls, { 'tls.crt': await pem(dir, from, 'tls.crt'), 'tls.key': await pem(dir, from, 'tls.key') }, 'kubernetes.io/tls');
  };
  const login = async (user: string, password: string): Promise<string> => {
    try {
      const { stdout } = await run('psql', [`host=127.0.0.1 port=${String(instance.ports.pgPort)} user=${user} dbname=app sslmode=require connect_timeout=10`, '-Atc', 'SELECT current_user'], {
        env: { ...process.env, PGPASSWORD: password },
        timeout: 30_000,
      });
      return stdout.trim();
    } catch (err) {
      throw new Error((err as { stderr?: string }).stderr ?? String(err));
    }
  };
  const servedSerial = (caFile: string): string => {
    const out = execFileSync('openssl', ['s_client', '-starttls', 'postgres', '-connect', `127.0.0.1:${String(instance.ports.pgPort)}`, '-CAfile', caFile, '-verify_return_error'], {
      input: '', encoding: 'utf8', stdio: ['pipe', 'pipe', 'ignore'],
    });
    return new X509Certificate(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(out)?.[0] ?? '').serialNumber;
  };
  const asReplicationUser = async (dir: string, secret: string, caFile: string): Promise<void> => {
    const conninfo = `host=127.0.0.1 port=${String(instance.ports.pgPort)} user=streaming_replica dbname=postgres sslmode=verify-ca sslrootcert=${caFile} sslcert=${join(dir, secret, 'tls.crt')} sslkey=${join(dir, secret, 'tls.key')} connect_timeout=10`;
    try {
      await run('psql', [conninfo, '-Atc', 'SELECT 1'], { timeout: 30_000 });
    } catch (err) {
      throw new Error((err as { stderr?: string }).stderr ?? String(err));
    }
  };
  const postmasterPid = async (): Promise<number> => ((await (await fetch(`${pgim.statusUrl}/pg/status`)).json()) as { postmasterPid: number }).postmasterPid;

  before(async function () {
    this.timeout(40 * 60_000);
    requireSlapd(this);
    const binDir = await requireK8sBinaries(this);
    if (cnpg === undefined) throw new Error('no CNPG CRD variant');
    requireCrdFile(this, cnpg);
    base = await makeTempDir('k8s-ldap');
    cleanup.push(() => removeTempDir(base));
    // Two test CAs: `s` issues the server certificate, `c` streaming_replica's; `l` is the directory's own.
    for (const name of ['s', 'c', 'l']) issue(name, join(base, 'certs'));
    await handToPostgres(join(base, 'certs'));
    const certs = join(base, 'certs');
    slapd = await Slapd.start({
      dir: join(base, 'slapd'),
      suffix: 'dc=example,dc=org',
      bindPassword: `${marker}-bind-1`,
      users: [alice],
      tls: { cert: await pem(certs, 'l-server', 'tls.crt'), key: await pem(certs, 'l-server', 'tls.key'), ca: await pem(certs, 'l-ca', 'ca.crt') },
    });
    cleanup.push(() => slapd.stop());
    server = await apiServerFor(binDir, cnpg);
    instance = await K8sInstance.create(server, {
      namespacePrefix: 'ldapcert',
      clusterName,
      appPassword: 'app-pw-k8s-ldap',
      superuserPassword,
      cluster: {
        enableSuperuserAccess: true,
        spec: {
          certificates: names,
          postgresql: {
            parameters: { shared_buffers: '16MB', max_connections: '30', log_connections: 'on' },
            pg_hba: ['host all app,postgres 127.0.0.1/32 scram-sha-256'],
            ldap: {
              server: '127.0.0.1',
              port: slapd.port,
              tls: true,
              bindSearchAuth: { baseDN: slapd.peopleDN, bindDN: slapd.bindDN, bindPassword: { name: 'ldap-bind', key: 'password' }, searchAttribute: 'uid' },
            },
          },
        },
      },
      // CNPG's Role names every Secret the instance reads: the LDAP bind password's and the user-provided ones.
      editRole: (role) => {
        const rules = role.rules as { resources: string[]; resourceNames?: string[] }[];
        rules.find((r) => r.resources.includes('secrets'))?.resourceNames?.push('ldap-bind', ...Object.values(names));
      },
    });
    cleanup.push(() => instance.dispose());
    await putSecret(server, instance.namespace, 'ldap-bind', { password: `${marker}-bind-1` }, 'Opaque');
    await putCa(certs, 's-ca', names.serverCASecret);
    await putPair(certs, 's-server', names.serverTLSSecret);
    await putCa(certs, 'c-ca', names.clientCASecret);
    await putPair(certs, 'c-replication', names.replicationTLSSecret);
    // ldaptls=1 trusts the directory's CA through libldap's LDAPTLS_CACERT (in a pod: spec.env and a projected volume).
    pgim = await instance.start({ kind: 'kubeconfig' }, { env: { LDAPTLS_CACERT: join(certs, 'l-ca', 'ca.crt') } });
    await pgim.waitReady(180_000);
    await query(instance.ports.pgPort, 'postgres', superuserPassword, 'CREATE ROLE alice LOGIN');
  });

  after(async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
    await releaseAllApiServers();
  });

  it('a directory user logs in through the LDAP rule (StartTLS), with the bind password read from its Secret', async () => {
    assert.equal(await login('alice', alice.password), 'alice');
    await assert.rejects(login('alice', 'wrong'), /LDAP authentication failed for user "alice"/);
  });

  it('follows the bind password Secret: rotated in the directory and the Secret, search+bind keeps working without a restart', async () => {
    const pid = await postmasterPid();
    await slapd.setPassword(slapd.bindDN, `${marker}-bind-2`);
    await assert.rejects(login('alice', alice.password), /LDAP authentication failed/);
    await putSecret(server, instance.namespace, 'ldap-bind', { password: `${marker}-bind-2` }, 'Opaque');
    await eventually(async () => login('alice', alice.password).then((user) => (user === 'alice' ? true : undefined)), 60_000, 'login with the rotated bind password');
    assert.equal(await postmasterPid(), pid);
  });

  it('serves the certificate of serverTLSSecret and verifies client certificates against clientCASecret only', async () => {
    const certs = join(base, 'certs');
    assert.equal(servedSerial(join(certs, 's-ca', 'ca.crt')), new X509Certificate(await pem(certs, 's-server', 'tls.crt')).serialNumber);
    await asReplicationUser(certs, 'c-replication', join(certs, 's-ca', 'ca.crt'));
    await assert.rejects(asReplicationUser(certs, 's-replication', join(certs, 's-ca', 'ca.crt')), /certificate|unknown ca|alert/i);
  });

  it('follows the certificate Secrets: a new server certificate and a new client CA applied live', async () => {
    const pid = await postmasterPid();
    const fresh = join(base, 'fresh');
    await mkdir(fresh, { recursive: true });
    issue('s', fresh);
    issue('c', fresh);
    await handToPostgres(fresh);
    // The new server CA goes first as a bundle with the old one, so every intermediate state is valid.
    const bundle = `${await pem(join(base, 'certs'), 's-ca', 'ca.crt')}\n${await pem(fresh, 's-ca', 'ca.crt')}\n`;
    await putSecret(server, instance.namespace, names.serverCASecret, { 'ca.crt': bundle }, 'Opaque');
    await putPair(fresh, 's-server', names.serverTLSSecret);
    await putCa(fresh, 'c-ca', names.clientCASecret);
    await putPair(fresh, 'c-replication', names.replicationTLSSecret);
    const newSerial = new X509Certificate(await pem(fresh, 's-server', 'tls.crt')).serialNumber;
    await eventually(async () => Promise.resolve(servedSerial(join(fresh, 's-ca', 'ca.crt')) === newSerial ? true : undefined), 60_000, 'the new server certificate served');
    await eventually(async () => asReplicationUser(fresh, 'c-replication', join(fresh, 's-ca', 'ca.crt')).then(() => true), 60_000, 'the new client CA trusted');
    await assert.rejects(asReplicationUser(join(base, 'certs'), 'c-replication', join(fresh, 's-ca', 'ca.crt')), /certificate|unknown ca|alert/i, 'the old client CA is not');
    assert.equal(await postmasterPid(), pid);
    await rm(fresh, { recursive: true, force: true });
  });

  it('the bind password appears in no log line, status patch or event', async () => {
    const cluster = await getCluster(server, instance.namespace, clusterName);
    const events = await listEvents(server, instance.namespace);
    await writeFile(join(base, 'sweep.txt'), pgim.output);
    for (const [what, text] of [['pgim output', pgim.output], ['Cluster status', JSON.stringify(cluster.status)], ['events', JSON.stringify(events)]] as const) {
      assert.ok(!text.includes(marker), `${what} holds the bind password`);
    }
  });
});
