import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Context } from 'mocha';
import { eventually, freePort, handToPostgres, isRoot, postgresUser } from './env.js';

const run = promisify(execFile);

export const slapdBinary = '/usr/sbin/slapd';

/**
 * The tests that need a real OpenLDAP server (Debian `slapd` + `ldap-utils`, installed by scripts/install-deps.sh
 * with the test tools) skip without it, and fail under CI=true, where it must have been installed.
 */
export function requireSlapd(context: Context): void {
  const missing = [slapdBinary, '/usr/sbin/slapadd', '/usr/bin/ldapmodify'].filter((path) => !existsSync(path));
  if (missing.length === 0) return;
  if (process.env.CI === 'true') throw new Error(`OpenLDAP is missing (${missing.join(', ')}): scripts/install-deps.sh installs slapd and ldap-utils`);
  console.warn(`SKIPPED: OpenLDAP is not installed (${missing.join(', ')}): apt-get install slapd ldap-utils`);
  context.skip();
}

export interface DirectoryUser {
  readonly uid: string;
  readonly password: string;
}

export interface SlapdOptions {
  /** Folder for the configuration, the database and the log (created). */
  readonly dir: string;
  readonly suffix: string;
  /** `cn=<bindCn>,ou=services,<suffix>`: the search+bind account. */
  readonly bindPassword: string;
  /** `uid=<uid>,ou=people,<suffix>`. */
  readonly users: readonly DirectoryUser[];
  /** Server certificate, key and CA (PEM): StartTLS offered. */
  readonly tls?: { cert: string; key: string; ca: string };
}

/**
 * A real OpenLDAP `slapd` on 127.0.0.1 with a generated slapd.conf (no debconf, no system service): one MDB database
 * loaded with slapadd, where only a bound account may search (so a wrong bind password breaks search+bind), and
 * passwords are readable by nobody. Runs as the postgres account when the tests run as root.
 */
export class Slapd {
  private child: ChildProcess | undefined;
  readonly log: string[] = [];
  private requireTls = false;

  private constructor(
    readonly options: SlapdOptions,
    readonly port: number,
  ) {}

  static async start(options: SlapdOptions): Promise<Slapd> {
    const slapd = new Slapd(options, await freePort());
    await mkdir(join(options.dir, 'data'), { recursive: true });
    if (options.tls) {
      await writeFile(join(options.dir, 'server.crt'), options.tls.cert);
      await writeFile(join(options.dir, 'server.key'), options.tls.key, { mode: 0o600 });
      await writeFile(join(options.dir, 'ca.crt'), options.tls.ca);
    }
    await slapd.writeConfig();
    await writeFile(join(options.dir, 'seed.ldif'), slapd.seed());
    await run('/usr/sbin/slapadd', ['-f', slapd.configPath, '-l', join(options.dir, 'seed.ldif')]);
    await run('/usr/sbin/slaptest', ['-u', '-f', slapd.configPath]);
    await handToPostgres(options.dir);
    await slapd.launch();
    return slapd;
  }

  get url(): string {
    return `ldap://127.0.0.1:${String(this.port)}`;
  }

  get bindDN(): string {
    return `cn=pgbind,ou=services,${this.options.suffix}`;
  }

  get peopleDN(): string {
    return `ou=people,${this.options.suffix}`;
  }

  private get rootDN(): string {
    return `cn=admin,${this.options.suffix}`;
  }

  private readonly rootPassword = `root-${Math.random().toString(36).slice(2)}`;

  private get configPath(): string {
    return join(this.options.dir, 'slapd.conf');
  }

  private async writeConfig(): Promise<void> {
    const { dir, suffix, tls } = this.options;
    const lines = [
      ...['core', 'cosine', 'inetorgperson', 'nis'].map((schema) => `include /etc/ldap/schema/${schema}.schema`),
      'modulepath /usr/lib/ldap',
      'moduleload back_mdb',
      `pidfile ${join(dir, 'slapd.pid')}`,
      `argsfile ${join(dir, 'slapd.args')}`,
      ...(tls ? [`TLSCACertificateFile ${join(dir, 'ca.crt')}`, `TLSCertificateFile ${join(dir, 'server.crt')}`, `TLSCertificateKeyFile ${join(dir, 'server.key')}`] : []),
      // With `tls=1`, every operation needs a TLS layer first: a plain (no StartTLS) bind is refused.
      ...(this.requireTls ? ['security tls=1'] : []),
      'database mdb',
      'maxsize 16777216',
      `suffix "${suffix}"`,
      `rootdn "${this.rootDN}"`,
      `rootpw ${this.rootPassword}`,
      `directory ${join(dir, 'data')}`,
      'access to attrs=userPassword by anonymous auth by * none',
      'access to * by users read by * none',
    ];
    await writeFile(this.configPath, `${lines.join('\n')}\n`, { mode: 0o600 });
  }

  private seed(): string {
    const { suffix, users, bindPassword } = this.options;
    const dc = /^dc=([^,]+)/.exec(suffix)?.[1] ?? 'example';
    const entries = [
      `dn: ${suffix}\nobjectClass: dcObject\nobjectClass: organization\ndc: ${dc}\no: ${dc}`,
      `dn: ${this.peopleDN}\nobjectClass: organizationalUnit\nou: people`,
      `dn: ou=services,${suffix}\nobjectClass: organizationalUnit\nou: services`,
      `dn: ${this.bindDN}\nobjectClass: person\ncn: pgbind\nsn: pgbind\nuserPassword:: ${Buffer.from(bindPassword).toString('base64')}`,
      ...users.map(
        (user) =>
          `dn: uid=${user.uid},${this.peopleDN}\nobjectClass: inetOrgPerson\nuid: ${user.uid}\ncn: ${user.uid}\nsn: ${user.uid}\nuserPassword:: ${Buffer.from(user.password).toString('base64')}`,
      ),
    ];
    return `${entries.join('\n\n')}\n`;
  }

  private async launch(): Promise<void> {
    const drop = isRoot ? ['-u', postgresUser, '-g', postgresUser] : [];
    // -d: stay in the foreground (and log to stderr) instead of forking a daemon.
    const child = spawn(slapdBinary, ['-f', this.configPath, '-h', `${this.url}/`, '-d', 'stats', ...drop], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.on('data', (chunk: Buffer) => this.log.push(chunk.toString()));
    this.child = child;
    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`slapd exited (${String(child.exitCode)}): ${this.log.join('').slice(-2000)}`);
        await run('/usr/bin/ldapwhoami', ['-x', '-H', this.url, '-D', this.rootDN, '-w', this.rootPassword, ...(this.requireTls ? ['-ZZ'] : [])], {
          env: { ...process.env, LDAPTLS_CACERT: join(this.options.dir, 'ca.crt') },
        });
        return true;
      },
      30_000,
      'slapd answering',
    );
  }

  /** Restarts slapd on the same port and data, requiring TLS (StartTLS) for every operation from now on. */
  async requireStartTls(): Promise<void> {
    if (!this.options.tls) throw new Error('slapd has no certificate');
    await this.stop();
    this.requireTls = true;
    await this.writeConfig();
    await handToPostgres(this.options.dir);
    await this.launch();
  }

  /** Changes an entry's password as the directory's administrator (what rotating the bind account's password is). */
  async setPassword(dn: string, password: string): Promise<void> {
    const ldif = `dn: ${dn}\nchangetype: modify\nreplace: userPassword\nuserPassword:: ${Buffer.from(password).toString('base64')}\n`;
    const ldifPath = join(this.options.dir, 'change.ldif');
    await writeFile(ldifPath, ldif, { mode: 0o600 });
    await run('/usr/bin/ldapmodify', ['-x', '-H', this.url, '-D', this.rootDN, '-w', this.rootPassword, '-f', ldifPath, ...(this.requireTls ? ['-ZZ'] : [])], {
      env: { ...process.env, LDAPTLS_CACERT: join(this.options.dir, 'ca.crt') },
    });
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}
