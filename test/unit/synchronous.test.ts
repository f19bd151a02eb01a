import { strict as assert } from 'node:assert';
import { parseClusterManifest } from '../../src/cluster/parse.js';
import type { ExplicitSynchronous, SynchronousReplication } from '../../src/cluster/synchronous.js';
import { ConfigError } from '../../src/errors/index.js';
import { renderCustomConf } from '../../src/render/custom-conf.js';
import {
  electPrimary,
  failoverQuorum,
  formatSynchronousStandbyNames,
  parseLsn,
  requiredAnswers,
  synchronousCondition,
  synchronousStandbyNamesConfig,
  type Candidate,
  type ClusterView,
} from '../../src/replication/synchronous.js';

const explicit = (over: Partial<ExplicitSynchronous> = {}): ExplicitSynchronous => ({
  kind: 'explicit',
  method: 'any',
  number: 2,
  maxStandbyNamesFromCluster: undefined,
  standbyNamesPre: [],
  standbyNamesPost: [],
  dataDurability: 'required',
  ...over,
});

/** CNPG's unit tests use pods named one, two, three with "one" primary; pgim's names are `<cluster>-N`. */
const view = (over: Partial<ClusterView> = {}): ClusterView => ({ clusterName: 'example', primary: 'one', instances: ['one', 'two', 'three'], streaming: ['two', 'three'], ...over });

const render = (sync: SynchronousReplication, v: ClusterView = view()): string => formatSynchronousStandbyNames(synchronousStandbyNamesConfig(sync, v));

describe('synchronous_standby_names (CNPG pkg/postgres/replication)', () => {
  describe('dataDurability required', () => {
    it('lists the streaming standbys, then the others, then the primary (ANY and FIRST)', () => {
      assert.equal(render(explicit()), 'ANY 2 ("three","two","one")');
      assert.equal(render(explicit({ method: 'first' })), 'FIRST 2 ("three","two","one")');
      // "two" does not stream: it moves after the streaming ones, still listed (writes wait rather than lose).
      assert.equal(render(explicit({ method: 'first' }), view({ streaming: ['three'] })), 'FIRST 2 ("three","two","one")');
      assert.equal(render(explicit({ method: 'first', number: 1 }), view({ instances: ['c-1', 'c-2', 'c-3'], primary: 'c-1', streaming: ['c-3'] })), 'FIRST 1 ("c-3","c-2","c-1")');
    });

    it('caps the cluster names at maxStandbyNamesFromCluster and adds the pre and post names around them', () => {
      assert.equal(render(explicit({ method: 'first', maxStandbyNamesFromCluster: 1 })), 'FIRST 2 ("three")');
      assert.equal(
        render(explicit({ method: 'first', maxStandbyNamesFromCluster: 1, standbyNamesPre: ['prefix', 'here'], standbyNamesPost: ['suffix', 'there'] })),
        'FIRST 2 ("prefix","here","three","suffix","there")',
      );
    });

    it('keeps a placeholder when nothing is listed, so writes wait instead of going asynchronous', () => {
      assert.equal(render(explicit({ method: 'first', maxStandbyNamesFromCluster: 0 })), 'FIRST 2 ("example-placeholder")');
    });

    it('renders the same set on a replica (which sees no standbys), so a promoted replica already waits', () => {
      assert.equal(render(explicit({ number: 1 }), view({ streaming: [] })), 'ANY 1 ("three","two","one")');
    });

    it('quotes names the PostgreSQL way', () => {
      assert.equal(render(explicit({ number: 1, standbyNamesPre: ['we"ird'] }), view({ instances: ['one'], streaming: [] })), 'ANY 1 ("we""ird","one")');
    });
  });

  describe('dataDurability preferred', () => {
    it('lists only the streaming standbys, never the primary, and lowers the number to them', () => {
      assert.equal(render(explicit({ dataDurability: 'preferred' })), 'ANY 2 ("three","two")');
      assert.equal(render(explicit({ dataDurability: 'preferred', method: 'first' }), view({ streaming: ['two'] })), 'FIRST 1 ("two")');
      assert.equal(render(explicit({ dataDurability: 'preferred', maxStandbyNamesFromCluster: 1 })), 'ANY 1 ("three")');
    });

    it('is empty when no standby streams: writes never block', () => {
      assert.equal(render(explicit({ dataDurability: 'preferred' }), view({ streaming: [] })), '');
      assert.equal(render(explicit({ dataDurability: 'preferred' }), view({ streaming: ['one', 'stranger'] })), '');
    });
  });

  describe('legacy minSyncReplicas/maxSyncReplicas', () => {
    const legacy = (min: number, max: number): SynchronousReplication => ({ kind: 'legacy', minSyncReplicas: min, maxSyncReplicas: max });
    it('uses max while enough standbys stream, min below, and what streams below min', () => {
      const five = view({ instances: ['a', 'b', 'c', 'd', 'e'], primary: 'a', streaming: ['b', 'c', 'd', 'e'] });
      assert.equal(render(legacy(1, 3), five), 'ANY 3 ("b","c","d","e")');
      assert.equal(render(legacy(1, 3), { ...five, streaming: ['b', 'c'] }), 'ANY 1 ("b","c")');
      assert.equal(render(legacy(2, 3), { ...five, streaming: ['c'] }), 'ANY 1 ("c")');
      assert.equal(render(legacy(1, 3), { ...five, streaming: [] }), '');
    });
  });

  it('is empty without synchronous replication, and custom.conf then has no line for it', () => {
    assert.equal(render(undefined), '');
    const base = { clusterName: 'c', userParameters: new Map<string, string>(), port: 5432, listenAddresses: '*', socketDirectory: '/s', logDirectory: '/l' };
    assert.doesNotMatch(renderCustomConf(base).text, /synchronous_standby_names/);
    assert.match(renderCustomConf({ ...base, synchronousStandbyNames: 'ANY 1 ("c-2","c-1")' }).text, /^synchronous_standby_names = 'ANY 1 \("c-2","c-1"\)'$/m);
  });

  it('reports the set as a Cluster condition', () => {
    const config = synchronousStandbyNamesConfig(explicit({ number: 1 }), view({ streaming: ['two'] }));
    assert.deepEqual(synchronousCondition(config, ['two']), {
      type: 'SynchronousReplication',
      status: 'True',
      reason: 'StandbysStreaming',
      message: 'synchronous_standby_names = ANY 1 ("two","three","one"); streaming: two',
    });
    assert.equal(synchronousCondition(config, []).reason, 'WaitingForStandbys');
    assert.equal(synchronousCondition(undefined, []).reason, 'Asynchronous');
  });
});

describe('choosing the new primary (failover election)', () => {
  const instances = ['c-1', 'c-2', 'c-3'];
  const replica = (name: string, received: string, over: Partial<Candidate> = {}): Candidate => ({
    name,
    healthy: true,
    streaming: false,
    receivedLsn: parseLsn(received),
    replayedLsn: parseLsn(received),
    ...over,
  });
  const down = (name: string): Candidate => ({ name, healthy: false, streaming: false, receivedLsn: 0n, replayedLsn: 0n, problem: 'unreachable' });

  it('parses LSNs', () => {
    assert.equal(parseLsn('0/3000060'), 0x3000060n);
    assert.equal(parseLsn('1/0'), 1n << 32n);
    assert.throws(() => parseLsn('nonsense'));
  });

  it('asynchronous: the most advanced healthy replica, by received LSN, then replayed LSN', () => {
    assert.deepEqual(electPrimary([replica('c-2', '0/500'), replica('c-3', '0/600')], { failover: true, quorum: undefined }), { target: 'c-3', heard: ['c-2', 'c-3'] });
    const tie = [replica('c-2', '0/600', { replayedLsn: 0x500n }), replica('c-3', '0/600', { replayedLsn: 0x400n })];
    assert.equal((electPrimary(tie, { failover: true, quorum: undefined }) as { target: string }).target, 'c-2');
    assert.equal((electPrimary([down('c-2'), replica('c-3', '0/1')], { failover: true, quorum: undefined }) as { target: string }).target, 'c-3');
    assert.match((electPrimary([down('c-2'), down('c-3')], { failover: true, quorum: undefined }) as { refused: string }).refused, /no healthy replica/);
  });

  it('a planned switchover only considers streaming replicas', () => {
    const election = electPrimary([replica('c-2', '0/900'), replica('c-3', '0/600', { streaming: true })], { failover: false, quorum: undefined });
    assert.equal((election as { target: string }).target, 'c-3');
  });

  it('quorum ANY 1 of 2: needs both standbys (N - k + 1 = 2); refuses with one, says why', () => {
    const quorum = failoverQuorum(explicit({ number: 1 }), instances, 'c-1');
    assert.ok(quorum);
    assert.equal(requiredAnswers(quorum), 2);
    assert.equal((electPrimary([replica('c-2', '0/500'), replica('c-3', '0/700')], { failover: true, quorum }) as { target: string }).target, 'c-3');
    const refused = electPrimary([replica('c-2', '0/500'), down('c-3')], { failover: true, quorum });
    assert.ok('refused' in refused);
    assert.match(refused.refused, /ANY 1 over 2 standbys.*2 answering replicas \(N - k \+ 1\), and 1 answered: c-2 \(not streaming\), c-3 \(unreachable\)/);
  });

  it('quorum ANY 2 of 4 needs 3; FIRST k is held to the same rule; external names count in N', () => {
    const five = ['c-1', 'c-2', 'c-3', 'c-4', 'c-5'];
    const quorum = failoverQuorum(explicit({ number: 2 }), five, 'c-1');
    assert.ok(quorum);
    assert.equal(requiredAnswers(quorum), 3);
    const three = [replica('c-2', '0/1'), replica('c-3', '0/2'), replica('c-4', '0/3'), down('c-5')];
    assert.equal((electPrimary(three, { failover: true, quorum }) as { target: string }).target, 'c-4');
    assert.ok('refused' in electPrimary([...three.slice(0, 2), down('c-4'), down('c-5')], { failover: true, quorum }));
    const first = failoverQuorum(explicit({ method: 'first', number: 1 }), instances, 'c-1');
    assert.ok(first);
    assert.equal(requiredAnswers(first), 2);
    const external = failoverQuorum(explicit({ number: 1, standbyNamesPost: ['dr-site'] }), instances, 'c-1');
    assert.ok(external);
    assert.equal(requiredAnswers(external), 3);
    assert.match((electPrimary([replica('c-2', '0/1'), replica('c-3', '0/2')], { failover: true, quorum: external }) as { refused: string }).refused, /1 listed outside it/);
  });

  it('legacy: minSyncReplicas is the guaranteed number; 0 guarantees nothing (asynchronous rules)', () => {
    assert.equal(failoverQuorum({ kind: 'legacy', minSyncReplicas: 0, maxSyncReplicas: 1 }, instances, 'c-1'), undefined);
    const quorum = failoverQuorum({ kind: 'legacy', minSyncReplicas: 1, maxSyncReplicas: 2 }, instances, 'c-1');
    assert.ok(quorum);
    assert.equal(requiredAnswers(quorum), 2);
    assert.equal(failoverQuorum(undefined, instances, 'c-1'), undefined);
  });
});

describe('spec.postgresql.synchronous and min/maxSyncReplicas (CNPG webhook rules)', () => {
  const manifest = (spec: string): string => `apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata: {name: c}\nspec:\n  instances: 3\n${spec}`;
  const parse = (spec: string) => parseClusterManifest(manifest(spec), 'cluster.yaml');
  const refused = (spec: string, field: string, message: RegExp): void => {
    assert.throws(
      () => parse(spec),
      (err: unknown) => err instanceof ConfigError && err.field === field && message.test(err.message),
    );
  };

  it('resolves the defaults', () => {
    assert.deepEqual(parse('  postgresql: {synchronous: {method: any, number: 1}}\n').synchronous, explicit({ number: 1 }));
    assert.deepEqual(parse('  minSyncReplicas: 1\n  maxSyncReplicas: 2\n').synchronous, { kind: 'legacy', minSyncReplicas: 1, maxSyncReplicas: 2 });
    assert.equal(parse('  minSyncReplicas: 0\n  maxSyncReplicas: 0\n').synchronous, undefined);
  });

  it('refuses what CNPG refuses, naming the field', () => {
    refused('  postgresql: {synchronous: {method: any, number: 0}}\n', 'spec.postgresql.synchronous.number', /greater than zero/);
    refused('  postgresql: {synchronous: {method: any, number: 3}}\n', 'spec.postgresql.synchronous.number', /less than the total number of instances/);
    refused('  postgresql: {synchronous: {method: most, number: 1}}\n', 'spec.postgresql.synchronous.method', /any or first/);
    refused('  postgresql: {synchronous: {method: any, number: 1, dataDurability: preferred, standbyNamesPre: [x]}}\n', 'spec.postgresql.synchronous.dataDurability', /requires empty/);
    refused('  postgresql: {synchronous: {method: any, number: 1}}\n  maxSyncReplicas: 1\n', 'spec.postgresql.synchronous', /both legacy/);
    refused('  minSyncReplicas: 2\n  maxSyncReplicas: 1\n', 'spec.minSyncReplicas', /greater than maxSyncReplicas/);
    refused('  maxSyncReplicas: 3\n', 'spec.maxSyncReplicas', /lower than the number of instances/);
    refused('  postgresql: {synchronous: {method: any, number: 1, failoverQuorum: true}}\n', 'spec.postgresql.synchronous.failoverQuorum', /not implemented/);
    refused('  postgresql: {synchronous: {method: any, number: 1, standbyNamesPost: [""]}}\n', 'spec.postgresql.synchronous.standbyNamesPost[0]', /must not be empty/);
  });
});
