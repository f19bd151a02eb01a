import { strict as assert } from 'node:assert';
import { goArch } from '../../src/daemon/manager-info.js';
import { resolveObservability, type ObservabilityManifest } from '../../src/cluster/observability.js';
import { backupSlotName } from '../../src/webserver/backup-mode.js';

describe("CNPG's cluster-level metric facts, Go architecture names, backup slot names", () => {
  it('reads the Cluster fields behind replica_mode, manual_switchover_required, nodes_used and the backup gauges', () => {
    const manifest = {
      spec: { replica: { enabled: true }, minSyncReplicas: 1, maxSyncReplicas: 2 },
      status: {
        phase: 'Waiting for user action',
        currentPrimary: 'demo-1',
        topology: { successfullyExtracted: true, nodesUsed: 3 },
        lastSuccessfulBackup: '2026-12-01T10:00:00Z',
      },
    } as unknown as ObservabilityManifest;
    assert.deepEqual(resolveObservability(manifest, 'demo').clusterFacts, {
      replicaMode: true,
      minSyncReplicas: 1,
      maxSyncReplicas: 2,
      phase: 'Waiting for user action',
      currentPrimary: 'demo-1',
      nodesUsed: 3,
      firstRecoverabilityPoint: undefined,
      lastSuccessfulBackup: '2026-12-01T10:00:00Z',
      lastFailedBackup: undefined,
    });
  });

  it('defaults, and a field of the wrong type reads as unknown instead of refusing the Cluster', () => {
    const facts = resolveObservability({ spec: {} }, 'demo').clusterFacts;
    assert.equal(facts.replicaMode, false);
    assert.equal(facts.nodesUsed, -1, "CNPG's 'not available'");
    const odd = { spec: { replica: 'yes', minSyncReplicas: 'two' }, status: { topology: { successfullyExtracted: false, nodesUsed: 2 } } } as unknown as ObservabilityManifest;
    const lenient = resolveObservability(odd, 'demo').clusterFacts;
    assert.equal(lenient.replicaMode, false);
    // CNPG's IsReplica: the primary/self form counts too.
    const distributed = (replica: Record<string, string>): boolean => resolveObservability({ spec: { replica } }, 'demo').clusterFacts.replicaMode;
    assert.equal(distributed({ source: 'east', primary: 'east' }), true);
    assert.equal(distributed({ source: 'east', primary: 'demo' }), false);
    assert.equal(lenient.minSyncReplicas, 0);
    assert.equal(lenient.nodesUsed, -1, 'not extracted: unknown');
  });

  it("maps Node's architecture names to Go's, which CNPG's operator looks its manager binaries up by", () => {
    assert.equal(goArch('x64'), 'amd64');
    assert.equal(goArch('arm64'), 'arm64');
    assert.equal(goArch('ppc64'), 'ppc64le');
    assert.equal(goArch('s390x'), 's390x');
  });

  it("names the backup's temporary slot as CNPG does", () => {
    assert.equal(backupSlotName('snapshot-backup-1'), 'snapshot_backup_1');
    assert.equal(backupSlotName('Nightly.2026'), '_ightly_2026');
  });
});
