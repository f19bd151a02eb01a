import { fieldPath } from '../../cluster/parse.js';
import { clusterManifestSchema, resolveCluster, type Cluster } from '../../cluster/schema.js';
import { ConfigError } from '../../errors/index.js';
import { fingerprint } from './fingerprint.js';
import { isRecord, type KubeObject } from './resources.js';

/**
 * Validates a Cluster object from the API server with the same schema and the same messages as a cluster.yaml in
 * files mode (`spec.instances: must be at least 1`), naming `cluster <namespace>/<name>` as the source.
 */
export function parseClusterObject(object: KubeObject, source: string): Cluster {
  const parsed = clusterManifestSchema.safeParse(object, { reportInput: true });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    if (issue === undefined) throw new ConfigError(source, '', 'invalid');
    const isMissing = issue.code === 'invalid_type' && issue.input === undefined;
    throw new ConfigError(source, fieldPath(issue.path), isMissing ? 'is required' : issue.message);
  }
  return resolveCluster(parsed.data, source);
}

/**
 * What of a Cluster can change what pgim renders or applies: the spec, the annotations, and the status fields the
 * operator uses to ask for something (target primary, the versions of the Secrets and ConfigMaps it wrote).
 * Not the resourceVersion: pgim's own status patches bump it, and they must not trigger a reload.
 */
export function clusterFingerprint(object: KubeObject | undefined): string {
  if (object === undefined) return 'absent';
  const status = isRecord(object.status) ? object.status : {};
  return fingerprint({
    spec: object.spec,
    annotations: object.metadata?.annotations ?? {},
    status: {
      targetPrimary: status.targetPrimary,
      secretsResourceVersion: status.secretsResourceVersion,
      configMapResourceVersion: status.configMapResourceVersion,
      // CNPG's operator lists the Poolers there: a new one needs the pooler integration.
      poolerIntegrations: status.poolerIntegrations,
      // CNPG's operator asks the primary for an in-place restart through this phase (no instance writes it).
      inPlaceRestart: status.phase === 'Primary instance is being restarted in-place',
    },
  });
}
