import { strict as assert } from 'node:assert';
import { stringify } from 'yaml';
import type { ManagedRole } from '../../src/cluster/managed-roles.js';
import { parseClusterManifest } from '../../src/cluster/parse.js';
import { replacingPatch } from '../../src/controlplane/kubernetes/status.js';
import { integratedPoolers } from '../../src/managed/pooler.js';
import {
  alterRoleStatement,
  createRoleStatements,
  evaluateRoleActions,
  membershipDiff,
  membershipStatements,
  rolesByStatus,
  type DatabaseRole,
  type PasswordState,
} from '../../src/managed/role-actions.js';

function cluster(roles: unknown[], extra: Record<string, unknown> = {}): string {
  return stringify({ apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', metadata: { name: 'pg' }, spec: { instances: 1, managed: { roles }, ...extra } });
}

function roles(...list: unknown[]): readonly ManagedRole[] {
  return parseClusterManifest(cluster(list), 'c.yaml').managedRoles;
}

const refusal = (list: unknown[], extra: Record<string, unknown> = {}): string => {
  try {
    parseClusterManifest(cluster(list, extra), 'c.yaml');
  } catch (err) {
    return (err as Error).message;
  }
  return 'accepted';
};

/** A pg_authid row as CREATE ROLE <name> NOLOGIN leaves it. */
function dbRole(name: string, overrides: Partial<DatabaseRole> = {}): DatabaseRole {
  return {
    name,
    superuser: false,
    inherit: true,
    createrole: false,
    createdb: false,
    login: false,
    replication: false,
    bypassrls: false,
    connectionLimit: -1,
    validUntil: undefined,
    comment: '',
    transactionID: 100,
    inRoles: [],
    ...overrides,
  };
}

const noPasswords = new Map<string, PasswordState>();
const noSecrets = new Map<string, string>();

describe('spec.managed.roles: the Cluster fields (CNPG RoleConfiguration and its webhook)', () => {
  it("resolves CNPG's defaults: ensure present, inherit true, connectionLimit -1, no password change", () => {
    const [role] = roles({ name: 'alice' });
    assert.deepEqual(role, {
      name: 'alice', comment: '', ensure: 'present', passwordSecret: undefined, disablePassword: false, superuser: false, createdb: false,
      createrole: false, inherit: true, login: false, replication: false, bypassrls: false, connectionLimit: -1, validUntil: undefined, inRoles: [],
    });
  });

  it("refuses reserved roles with CNPG's reason, the app owner, duplicates, both a password and disablePassword, a limit below -1", () => {
    for (const name of ['postgres', 'streaming_replica', 'cnpg_pooler_pgbouncer', 'cnpg_metrics_exporter', 'pg_monitor']) {
      assert.equal(refusal([{ name }]), `c.yaml: spec.managed.roles[0].name: This role is reserved for operator use: ${name}`);
    }
    assert.match(refusal([{ name: 'app' }]), /spec\.managed\.roles\[0\]\.name: app is the application owner/);
    assert.match(refusal([{ name: 'owner1' }], { bootstrap: { initdb: { database: 'db', owner: 'owner1' } } }), /owner1 is the application owner/);
    assert.match(refusal([{ name: 'a' }, { name: 'a' }]), /spec\.managed\.roles\[1\]\.name: Role name is duplicate of another/);
    assert.match(refusal([{ name: 'a', disablePassword: true, passwordSecret: { name: 's' } }]), /spec\.managed\.roles\[0\]\.disablePassword: This role both sets and disables a password/);
    assert.match(refusal([{ name: 'a', connectionLimit: -2 }]), /spec\.managed\.roles\[0\]\.connectionLimit: Connection limit should be positive/);
    assert.match(refusal([{ name: 'a', validUntil: 'tomorrow' }]), /spec\.managed\.roles\[0\]\.validUntil: must be an RFC 3339 time/);
    assert.match(refusal([{ name: 'a', ensure: 'maybe' }]), /spec\.managed\.roles\[0\]\.ensure: must be present or absent/);
    assert.match(refusal([{ name: 'a', superuser: 'yes' }]), /spec\.managed\.roles\[0\]\.superuser/);
    assert.match(refusal([{ name: 'a', unknown: 1 }]), /spec\.managed\.roles\[0\]/);
  });

  it('reads status.managedRolesStatus.passwordStatus and status.poolerIntegrations', () => {
    const text = `${cluster([{ name: 'a' }])}status:\n  managedRolesStatus:\n    passwordStatus:\n      a: {transactionID: 42, resourceVersion: "7"}\n  poolerIntegrations:\n    pgBouncerIntegration:\n      secrets: [pooler-rw]\n`;
    const c = parseClusterManifest(text, 'c.yaml');
    assert.deepEqual(c.managedRolesPasswordStatus, { a: { transactionID: 42, resourceVersion: '7' } });
    assert.deepEqual(c.pgBouncerIntegrationSecrets, ['pooler-rw']);
  });
});

describe('managed roles: the decision (CNPG evaluateNextRoleActions)', () => {
  it('creates what is missing, leaves what matches, drops what is absent, reports reserved and unmanaged roles', () => {
    const spec = roles({ name: 'new' }, { name: 'same' }, { name: 'gone', ensure: 'absent' }, { name: 'never', ensure: 'absent' });
    const actions = evaluateRoleActions(spec, [dbRole('postgres'), dbRole('same'), dbRole('gone'), dbRole('other'), dbRole('cnpg_x')], new Map([['same', { transactionID: 100, resourceVersion: '' }]]), noSecrets);
    assert.deepEqual(actions.create.map((r) => r.name), ['new']);
    assert.deepEqual(actions.drop, ['gone']);
    assert.deepEqual(rolesByStatus(actions), {
      reconciled: ['never', 'same'],
      'not-managed': ['other'],
      'pending-reconciliation': ['gone', 'new'],
      reserved: ['cnpg_x', 'postgres'],
    });
  });

  it('updates on any attribute drift, and on a validUntil the spec no longer has (set to infinity)', () => {
    const spec = roles({ name: 'r', login: true, connectionLimit: 5, validUntil: '2030-01-01T00:00:00Z' });
    const stored = new Map([['r', { transactionID: 100, resourceVersion: '' }]]);
    const inSync = dbRole('r', { login: true, connectionLimit: 5, validUntil: Date.parse('2030-01-01T00:00:00Z') });
    assert.deepEqual(evaluateRoleActions(spec, [inSync], stored, noSecrets).reconciled, ['r']);
    for (const drift of [{ login: false }, { superuser: true }, { connectionLimit: 6 }, { inherit: false }, { bypassrls: true }, { validUntil: Infinity }]) {
      assert.equal(evaluateRoleActions(spec, [{ ...inSync, ...drift }], stored, noSecrets).update.length, 1, JSON.stringify(drift));
    }
    const noExpiry = roles({ name: 'r' });
    const update = evaluateRoleActions(noExpiry, [dbRole('r', { validUntil: 1 })], stored, noSecrets).update[0];
    assert.equal(update?.validUntilInfinity, true);
    assert.match(alterRoleStatement(update, { kind: 'keep' }), /VALID UNTIL 'infinity'$/);
    assert.deepEqual(evaluateRoleActions(noExpiry, [dbRole('r', { validUntil: Infinity })], stored, noSecrets).reconciled, ['r']);
  });

  it('applies each Secret version once, and again when the row changed behind pgim (a password set by hand)', () => {
    const spec = roles({ name: 'r', passwordSecret: { name: 's' } });
    const applied = new Map([['r', { transactionID: 100, resourceVersion: 'v1' }]]);
    assert.equal(evaluateRoleActions(spec, [dbRole('r')], applied, new Map([['r', 'v1']])).update.length, 0, 'same version, same row');
    assert.equal(evaluateRoleActions(spec, [dbRole('r')], applied, new Map([['r', 'v2']])).update.length, 1, 'new Secret version');
    assert.equal(evaluateRoleActions(spec, [dbRole('r', { transactionID: 101 })], applied, new Map([['r', 'v1']])).update.length, 1, 'changed by hand');
    assert.equal(evaluateRoleActions(spec, [dbRole('r')], applied, noSecrets).update.length, 1, 'Secret missing: flagged, the update says why');
    assert.equal(evaluateRoleActions(spec, [dbRole('r')], noPasswords, new Map([['r', 'v1']])).update.length, 1, 'never applied');
  });

  it('then the comment, then the memberships', () => {
    const stored = new Map([['r', { transactionID: 100, resourceVersion: '' }]]);
    const spec = roles({ name: 'r', comment: 'hi', inRoles: ['b', 'a'] });
    assert.deepEqual(evaluateRoleActions(spec, [dbRole('r')], stored, noSecrets).setComment.map((r) => r.name), ['r']);
    assert.deepEqual(evaluateRoleActions(spec, [dbRole('r', { comment: 'hi' })], stored, noSecrets).updateMemberships.map((r) => r.name), ['r']);
    assert.deepEqual(evaluateRoleActions(spec, [dbRole('r', { comment: 'hi', inRoles: ['a', 'b'] })], stored, noSecrets).reconciled, ['r']);
    assert.deepEqual(membershipDiff(['a', 'c'], ['a', 'b']), { grant: ['b'], revoke: ['c'] });
    assert.deepEqual(membershipStatements('r', { grant: ['b'], revoke: ['c'] }), ['GRANT "b" TO "r"', 'REVOKE "c" FROM "r"']);
  });

  it("writes CNPG's statements, identifiers and literals quoted", () => {
    const [role] = roles({ name: 'we"ird', login: true, comment: "it's", inRoles: ['pg_monitor'], connectionLimit: 3, validUntil: '2030-01-01T00:00:00Z' });
    assert.deepEqual(createRoleStatements(role!, { kind: 'verifier', verifier: 'SCRAM-SHA-256$4096:x$y:z' }), [
      `CREATE ROLE "we""ird" NOBYPASSRLS NOCREATEDB NOCREATEROLE INHERIT LOGIN NOREPLICATION NOSUPERUSER CONNECTION LIMIT 3 IN ROLE "pg_monitor" PASSWORD 'SCRAM-SHA-256$4096:x$y:z' VALID UNTIL '2030-01-01T00:00:00.000Z'`,
      `COMMENT ON ROLE "we""ird" IS 'it''s'`,
    ]);
    const [disabled] = roles({ name: 'd', disablePassword: true });
    assert.match(alterRoleStatement({ role: disabled!, validUntilInfinity: false }, { kind: 'null' }), / PASSWORD NULL$/);
  });
});

describe('managed roles: status patch and pooler selection', () => {
  it('replaces status.managedRolesStatus as a whole with a merge patch (keys gone are nulled)', () => {
    const current = { byStatus: { 'pending-reconciliation': ['a'], reconciled: ['b'] }, cannotReconcile: { a: ['x'] }, passwordStatus: { a: { transactionID: 1 } } };
    const wanted = { byStatus: { reconciled: ['a', 'b'] }, passwordStatus: { a: { transactionID: 2 } } };
    assert.deepEqual(replacingPatch(current, wanted), {
      cannotReconcile: null,
      byStatus: { 'pending-reconciliation': null, reconciled: ['a', 'b'] },
      passwordStatus: { a: { transactionID: 2 } },
    });
    assert.equal(replacingPatch(wanted, wanted), undefined);
  });

  it("integrates the cluster's PgBouncer Poolers that set no authQuerySecret of their own (CNPG)", () => {
    const poolers = [
      { name: 'rw', spec: { cluster: { name: 'pg' }, pgbouncer: {} } },
      { name: 'own-auth', spec: { cluster: { name: 'pg' }, pgbouncer: { authQuerySecret: { name: 'x' } } } },
      { name: 'other', spec: { cluster: { name: 'other' }, pgbouncer: {} } },
      { name: 'no-pgbouncer', spec: { cluster: { name: 'pg' } } },
    ];
    assert.deepEqual(integratedPoolers(poolers, 'pg'), ['rw']);
  });
});
