import { ConfigError } from '../errors/index.js';

/**
 * Which `postgresql.cnpg.io/v1` Cluster spec fields pgim implements, at the granularity of CloudNativePG's CRD.
 * One line per field; when pgim implements a field, its line moves to `implemented` (or gains the values it now
 * accepts). `test/unit/field-support.test.ts` checks that every field path of CNPG's Cluster CRD is classified here,
 * and the README's table is this table (the same test compares them).
 *
 * - `implemented`: pgim does what CNPG's instance manager does with it.
 * - `operator`: accepted and irrelevant to an instance manager: only CNPG's operator acts on it (scheduling, storage,
 *   pod template, Services); pgim has nothing to do.
 * - `refused`: an instance-manager duty pgim does not have yet. A manifest that sets it is refused (exit 3, the field
 *   named) unless the value asks for nothing (`accepts`), or the Cluster lists the field in the
 *   `pgim.io/ignoreUnsupportedFields` annotation; `neverIgnored` fields ask for data pgim would not have (a restore, a
 *   clone of another cluster): running without them would initdb an empty database, so no annotation accepts them.
 *
 * An entry covers its whole subtree, unless the table lists children of it: then every child is listed too.
 */
export type Support = 'implemented' | 'operator' | 'refused';

export interface FieldSupport {
  readonly path: string;
  readonly support: Support;
  readonly why: string;
  /** Values that ask for nothing pgim lacks (a refused field), or the values pgim implements (an implemented one). */
  readonly accepts?: (value: unknown) => boolean;
  /** Shown in the README for `accepts`. */
  readonly accepted?: string;
  readonly neverIgnored?: true;
}

/** The annotation by which a Cluster accepts that pgim ignores the refused fields it lists (a JSON list of paths). */
export const ignoreUnsupportedFieldsAnnotation = 'pgim.io/ignoreUnsupportedFields';

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isEmptyList = (v: unknown): boolean => Array.isArray(v) && v.length === 0;
const isDisabled = (v: unknown): boolean => isRecord(v) && v.enabled === false;
const hasNoPlugin = (v: unknown): boolean => Array.isArray(v) && v.every((entry) => !isRecord(entry) || entry.plugin === undefined);
const is =
  (...values: unknown[]) =>
  (v: unknown): boolean =>
    values.includes(v);

const scheduling = 'pod scheduling: the operator writes it into the pod spec';
const podTemplate = 'the operator writes it into the pod template';
const storage = 'volumes: the operator creates and mounts them; pgim uses the PGDATA it is given';

/** The kubelet's side of a probe: the operator writes it into the container's probe. */
function probeTimings(probe: string): FieldSupport[] {
  const fields = ['failureThreshold', 'initialDelaySeconds', 'periodSeconds', 'successThreshold', 'terminationGracePeriodSeconds', 'timeoutSeconds'];
  return fields.map((name) => ({ path: `${probe}.${name}`, support: 'operator', why: "the kubelet's probe settings in the pod spec" }));
}

/** CNPG's defaults for `spec.primaryLease`, which pgim's Lease uses. */
const primaryLeaseDefaults: Readonly<Record<string, number>> = { leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 2, releasedLeaseDurationSeconds: 1 };
function isDefaultPrimaryLease(v: unknown): boolean {
  return isRecord(v) && Object.entries(v).every(([key, value]) => primaryLeaseDefaults[key] === value);
}

export const clusterFieldSupport: readonly FieldSupport[] = [
  { path: 'spec.affinity', support: 'operator', why: scheduling },
  { path: 'spec.backup', support: 'implemented', why: 'split below' },
  { path: 'spec.backup.barmanObjectStore', support: 'implemented', why: 'WAL archiving and base backups with Barman Cloud (src/backup; unsupported values refused by the schema)' },
  { path: 'spec.backup.retentionPolicy', support: 'implemented', why: 'barman-cloud-backup-delete after every backup' },
  { path: 'spec.backup.target', support: 'implemented', why: 'which instance takes a Backup' },
  { path: 'spec.backup.volumeSnapshot', support: 'refused', why: 'volume snapshot backups are not implemented' },
  { path: 'spec.bootstrap', support: 'implemented', why: 'split below' },
  { path: 'spec.bootstrap.initdb', support: 'implemented', why: 'split below' },
  { path: 'spec.bootstrap.initdb.database', support: 'implemented', why: 'the application database created at bootstrap' },
  { path: 'spec.bootstrap.initdb.owner', support: 'implemented', why: 'its owner' },
  { path: 'spec.bootstrap.initdb.secret', support: 'implemented', why: "the owner's credentials" },
  { path: 'spec.bootstrap.initdb.dataChecksums', support: 'implemented', why: 'initdb --data-checksums' },
  { path: 'spec.bootstrap.initdb.encoding', support: 'implemented', why: 'initdb --encoding (default UTF8)' },
  { path: 'spec.bootstrap.initdb.localeCollate', support: 'implemented', why: 'initdb --lc-collate (default C)' },
  { path: 'spec.bootstrap.initdb.localeCType', support: 'implemented', why: 'initdb --lc-ctype (default C)' },
  { path: 'spec.bootstrap.initdb.locale', support: 'implemented', why: 'initdb --locale' },
  { path: 'spec.bootstrap.initdb.localeProvider', support: 'implemented', why: 'initdb --locale-provider (builtin needs PostgreSQL 17: refused on older servers)' },
  { path: 'spec.bootstrap.initdb.icuLocale', support: 'implemented', why: 'initdb --icu-locale' },
  { path: 'spec.bootstrap.initdb.icuRules', support: 'implemented', why: 'initdb --icu-rules (PostgreSQL 16 or later: refused on older servers)' },
  { path: 'spec.bootstrap.initdb.builtinLocale', support: 'implemented', why: 'initdb --builtin-locale (PostgreSQL 17 or later: refused on older servers)' },
  { path: 'spec.bootstrap.initdb.walSegmentSize', support: 'implemented', why: 'initdb --wal-segsize' },
  { path: 'spec.bootstrap.initdb.options', support: 'implemented', why: 'extra initdb options, as CNPG passes them (then the explicit fields are ignored); options that change what pgim sets are refused' },
  { path: 'spec.bootstrap.initdb.postInitSQL', support: 'implemented', why: 'run in the postgres database at bootstrap' },
  { path: 'spec.bootstrap.initdb.postInitSQLRefs', support: 'implemented', why: 'SQL from Secrets, then ConfigMaps, run in postgres after postInitSQL' },
  { path: 'spec.bootstrap.initdb.postInitTemplateSQL', support: 'implemented', why: 'run in template1 at bootstrap' },
  { path: 'spec.bootstrap.initdb.postInitTemplateSQLRefs', support: 'implemented', why: 'SQL from Secrets, then ConfigMaps, run in template1' },
  { path: 'spec.bootstrap.initdb.postInitApplicationSQL', support: 'implemented', why: 'run in the application database once created' },
  { path: 'spec.bootstrap.initdb.postInitApplicationSQLRefs', support: 'implemented', why: 'SQL from Secrets, then ConfigMaps, run in the application database' },
  { path: 'spec.bootstrap.initdb.import', support: 'refused', why: 'importing databases from another cluster is not implemented: pgim would create an empty database', neverIgnored: true },
  { path: 'spec.bootstrap.pg_basebackup', support: 'implemented', why: 'an empty PGDATA is cloned from an externalClusters entry with pg_basebackup, then promoted (src/daemon/clone.ts)' },
  { path: 'spec.bootstrap.recovery', support: 'implemented', why: 'split below' },
  { path: 'spec.bootstrap.recovery.source', support: 'implemented', why: 'restores the backup and WAL of an externalClusters entry with barmanObjectStore (src/backup/restore.ts)' },
  { path: 'spec.bootstrap.recovery.backup', support: 'implemented', why: "restores a Backup object's backup (its status names the store and the backup id)" },
  { path: 'spec.bootstrap.recovery.recoveryTarget', support: 'implemented', why: 'point-in-time recovery: targetTime, targetLSN, targetXID, targetName, targetImmediate, exclusive, targetTLI, backupID' },
  { path: 'spec.bootstrap.recovery.database', support: 'implemented', why: 'the application database' },
  { path: 'spec.bootstrap.recovery.owner', support: 'implemented', why: 'its owner' },
  { path: 'spec.bootstrap.recovery.secret', support: 'implemented', why: "the owner's credentials, applied after the restore" },
  { path: 'spec.bootstrap.recovery.volumeSnapshots', support: 'refused', why: 'recovery from volume snapshots is not implemented: pgim would initdb an empty database', neverIgnored: true },
  { path: 'spec.certificates', support: 'implemented', why: 'split below' },
  { path: 'spec.certificates.clientCASecret', support: 'implemented', why: 'its ca.crt is ssl_ca_file: client and replica certificates are verified against it' },
  { path: 'spec.certificates.replicationTLSSecret', support: 'implemented', why: "streaming_replica's client certificate (tls.crt, tls.key), checked against the client CA" },
  { path: 'spec.certificates.serverCASecret', support: 'implemented', why: "its ca.crt is the replicas' sslrootcert: they verify the primary against it" },
  { path: 'spec.certificates.serverTLSSecret', support: 'implemented', why: 'ssl_cert_file and ssl_key_file (tls.crt, tls.key), checked against the server CA' },
  { path: 'spec.certificates.serverAltDNSNames', support: 'operator', why: 'the operator puts them into the server certificate it issues' },
  { path: 'spec.description', support: 'operator', why: 'a description for people' },
  { path: 'spec.enablePDB', support: 'operator', why: 'the operator creates the PodDisruptionBudget' },
  { path: 'spec.enableSuperuserAccess', support: 'implemented', why: 'the superuser password follows it' },
  { path: 'spec.env', support: 'operator', why: podTemplate },
  { path: 'spec.envFrom', support: 'operator', why: podTemplate },
  { path: 'spec.ephemeralVolumeSource', support: 'operator', why: storage },
  { path: 'spec.ephemeralVolumesSizeLimit', support: 'operator', why: storage },
  { path: 'spec.externalClusters', support: 'implemented', why: 'the servers bootstrap.pg_basebackup clones and a replica cluster follows (CNPG-I plugins refused)', accepts: hasNoPlugin, accepted: 'entries without plugin' },
  { path: 'spec.failoverDelay', support: 'operator', why: 'the operator decides when to fail over' },
  { path: 'spec.imageCatalogRef', support: 'operator', why: 'the operator chooses the image' },
  { path: 'spec.imageName', support: 'operator', why: 'the operator chooses the image' },
  { path: 'spec.imagePullPolicy', support: 'operator', why: podTemplate },
  { path: 'spec.imagePullSecrets', support: 'operator', why: podTemplate },
  { path: 'spec.inheritedMetadata', support: 'operator', why: 'labels and annotations the operator copies onto the objects it creates' },
  { path: 'spec.instances', support: 'implemented', why: 'the instance names <cluster>-1..N and their HA slots' },
  { path: 'spec.livenessProbeTimeout', support: 'operator', why: "the liveness probe's settings in the pod spec" },
  { path: 'spec.logLevel', support: 'operator', why: 'the operator passes it as --log-level' },
  { path: 'spec.managed', support: 'implemented', why: 'split below' },
  { path: 'spec.managed.roles', support: 'implemented', why: 'roles created, altered and dropped on the primary as CNPG does, passwords as SCRAM verifiers, status in managedRolesStatus' },
  { path: 'spec.managed.services', support: 'operator', why: 'the operator creates the Services' },
  { path: 'spec.maxSyncReplicas', support: 'implemented', why: 'legacy synchronous replication: the quorum target over the streaming standbys' },
  { path: 'spec.minSyncReplicas', support: 'implemented', why: 'legacy synchronous replication: the quorum kept while enough standbys stream' },
  { path: 'spec.monitoring', support: 'implemented', why: 'split below' },
  { path: 'spec.monitoring.customQueriesConfigMap', support: 'implemented', why: 'custom metrics queries' },
  { path: 'spec.monitoring.customQueriesSecret', support: 'implemented', why: 'custom metrics queries' },
  { path: 'spec.monitoring.disableDefaultQueries', support: 'implemented', why: "leaves CNPG's default queries out" },
  { path: 'spec.monitoring.metricsQueriesTTL', support: 'implemented', why: 'how long query results are cached' },
  { path: 'spec.monitoring.tls', support: 'implemented', why: 'TLS on the metrics port' },
  { path: 'spec.monitoring.enablePodMonitor', support: 'operator', why: 'the operator creates the PodMonitor' },
  { path: 'spec.monitoring.podMonitorMetricRelabelings', support: 'operator', why: "the PodMonitor's relabelings" },
  { path: 'spec.monitoring.podMonitorRelabelings', support: 'operator', why: "the PodMonitor's relabelings" },
  { path: 'spec.nodeMaintenanceWindow', support: 'operator', why: 'the operator handles node drains' },
  { path: 'spec.plugins', support: 'refused', why: 'CNPG-I plugins are not implemented', accepts: isEmptyList, accepted: '[]' },
  { path: 'spec.podSecurityContext', support: 'operator', why: podTemplate },
  { path: 'spec.podSelectorRefs', support: 'refused', why: 'pod selectors in pg_hba rules are not implemented', accepts: isEmptyList, accepted: '[]' },
  { path: 'spec.postgresGID', support: 'operator', why: "the pod's security context (pgim runs as --user)" },
  { path: 'spec.postgresUID', support: 'operator', why: "the pod's security context (pgim runs as --user)" },
  { path: 'spec.postgresql', support: 'implemented', why: 'split below' },
  { path: 'spec.postgresql.parameters', support: 'implemented', why: 'rendered into custom.conf' },
  { path: 'spec.postgresql.pg_hba', support: 'implemented', why: 'rendered into pg_hba.conf' },
  { path: 'spec.postgresql.pg_ident', support: 'implemented', why: 'rendered into pg_ident.conf' },
  { path: 'spec.postgresql.enableAlterSystem', support: 'refused', why: 'ALTER SYSTEM stays as PostgreSQL 15 has it', accepts: is(false), accepted: 'false' },
  { path: 'spec.postgresql.extensions', support: 'refused', why: 'extension image volumes are not implemented', accepts: isEmptyList, accepted: '[]' },
  { path: 'spec.postgresql.ldap', support: 'implemented', why: "CNPG's LDAP pg_hba rule, the bind password read from its Secret" },
  { path: 'spec.postgresql.promotionTimeout', support: 'refused', why: 'pgim waits for a promotion without a configurable limit' },
  { path: 'spec.postgresql.shared_preload_libraries', support: 'refused', why: 'managed shared_preload_libraries are not implemented', accepts: isEmptyList, accepted: '[]' },
  { path: 'spec.postgresql.syncReplicaElectionConstraint', support: 'refused', why: 'choosing synchronous standbys by node labels is not implemented', accepts: isDisabled, accepted: '{enabled: false}' },
  { path: 'spec.postgresql.synchronous', support: 'implemented', why: 'split below' },
  ...['method', 'number', 'maxStandbyNamesFromCluster', 'standbyNamesPre', 'standbyNamesPost', 'dataDurability'].map(
    (name): FieldSupport => ({ path: `spec.postgresql.synchronous.${name}`, support: 'implemented', why: 'synchronous_standby_names, rendered by the primary as standbys come and go' }),
  ),
  { path: 'spec.postgresql.synchronous.failoverQuorum', support: 'refused', why: "the FailoverQuorum object CNPG's operator reads is not maintained (`pgim switchover --failover` applies the same quorum rule)", accepts: is(false), accepted: 'false' },
  { path: 'spec.postgresql.synchronous.nodeFailureDomainKeys', support: 'refused', why: 'failure-domain-aware standby selection is not implemented', accepts: isEmptyList, accepted: '[]' },
  { path: 'spec.postgresql.synchronous.podFailureDomainKeys', support: 'refused', why: 'failure-domain-aware standby selection is not implemented', accepts: isEmptyList, accepted: '[]' },
  { path: 'spec.primaryLease', support: 'refused', why: 'pgim uses the default primary Lease durations (15 s lease, 10 s renew deadline, 2 s retry, 1 s after release)', accepts: isDefaultPrimaryLease, accepted: 'the defaults' },
  { path: 'spec.primaryUpdateMethod', support: 'implemented', why: 'pgim restarts the primary in place', accepts: is('restart'), accepted: 'restart' },
  { path: 'spec.primaryUpdateStrategy', support: 'implemented', why: 'unsupervised: restarts for pending settings, replicas first; supervised: waits' },
  { path: 'spec.priorityClassName', support: 'operator', why: scheduling },
  { path: 'spec.probes', support: 'implemented', why: 'split below' },
  { path: 'spec.probes.startup', support: 'implemented', why: 'split below' },
  { path: 'spec.probes.startup.type', support: 'implemented', why: 'what /startupz checks' },
  { path: 'spec.probes.startup.maximumLag', support: 'implemented', why: 'the lag /startupz allows' },
  ...probeTimings('spec.probes.startup'),
  { path: 'spec.probes.readiness', support: 'implemented', why: 'split below' },
  { path: 'spec.probes.readiness.type', support: 'implemented', why: 'what /readyz checks' },
  { path: 'spec.probes.readiness.maximumLag', support: 'implemented', why: 'the lag /readyz allows' },
  ...probeTimings('spec.probes.readiness'),
  { path: 'spec.probes.liveness', support: 'operator', why: 'split below' },
  ...probeTimings('spec.probes.liveness'),
  { path: 'spec.probes.liveness.isolationCheck', support: 'implemented', why: "/healthz on a primary fails when neither the API server nor every other instance's /failsafe answers (CNPG's pinger). Kubernetes mode only: files mode refuses enabled: true (no API server to tell isolation from lost peers)" },
  { path: 'spec.projectedVolumeTemplate', support: 'operator', why: storage },
  { path: 'spec.replica', support: 'implemented', why: 'replica clusters: the designated primary streams from the source (or follows its object store with restore_command), promotion by enabled: false or primary == self (promotionToken and minApplyDelay refused by the schema)' },
  { path: 'spec.replicationSlots', support: 'implemented', why: 'split below' },
  { path: 'spec.replicationSlots.highAvailability', support: 'implemented', why: 'split below' },
  { path: 'spec.replicationSlots.highAvailability.enabled', support: 'implemented', why: 'the primary keeps an HA slot per replica', accepts: is(true), accepted: 'true' },
  { path: 'spec.replicationSlots.highAvailability.synchronizeLogicalDecoding', support: 'refused', why: 'synchronising logical decoding slots to the replicas is not implemented', accepts: is(false), accepted: 'false' },
  { path: 'spec.replicationSlots.highAvailability.slotPrefix', support: 'implemented', why: "CNPG's HA slot prefix", accepts: is('_cnpg_'), accepted: '_cnpg_' },
  { path: 'spec.replicationSlots.synchronizeReplicas', support: 'implemented', why: "every replica creates, advances and drops copies of the primary's user physical slots (excludePatterns left alone), so a failover keeps them; enabled: false drops the copies (CNPG's replicator)" },
  { path: 'spec.replicationSlots.updateInterval', support: 'implemented', why: "how often (seconds) a replica follows the primary's slots" },
  { path: 'spec.resources', support: 'operator', why: podTemplate },
  { path: 'spec.schedulerName', support: 'operator', why: scheduling },
  { path: 'spec.seccompProfile', support: 'operator', why: podTemplate },
  { path: 'spec.securityContext', support: 'operator', why: podTemplate },
  { path: 'spec.serviceAccountName', support: 'operator', why: podTemplate },
  { path: 'spec.serviceAccountTemplate', support: 'operator', why: 'the operator creates the ServiceAccount' },
  { path: 'spec.smartShutdownTimeout', support: 'implemented', why: 'the smart part of a stop' },
  { path: 'spec.startDelay', support: 'operator', why: "the startup probe's budget in the pod spec" },
  { path: 'spec.stopDelay', support: 'implemented', why: 'the fast part of a stop' },
  { path: 'spec.storage', support: 'operator', why: storage },
  { path: 'spec.superuserSecret', support: 'implemented', why: "the superuser's credentials" },
  { path: 'spec.switchoverDelay', support: 'implemented', why: "the old primary's stop in a switchover" },
  { path: 'spec.tablespaces', support: 'implemented', why: "name, owner, temporary: created and owned by the primary in the folder <tablespaces root>/<name>/data, temporary ones in temp_tablespaces, replicas mapped by pg_basebackup; storage is the operator's volume at that folder" },
  { path: 'spec.topologySpreadConstraints', support: 'operator', why: scheduling },
  { path: 'spec.walStorage', support: 'refused', why: 'a separate WAL volume (initdb --waldir) is not implemented: WAL would stay in PGDATA' },
];

const byPath = new Map(clusterFieldSupport.map((entry) => [entry.path, entry]));
/** Entries that the table splits into their sub-fields. */
const split = new Set(clusterFieldSupport.map((entry) => entry.path.slice(0, entry.path.lastIndexOf('.'))));

/** The entry that classifies `path`: its own, or its nearest listed ancestor's. */
export function classifyField(path: string): FieldSupport | undefined {
  for (let p = path; p !== ''; p = p.slice(0, Math.max(0, p.lastIndexOf('.')))) {
    const entry = byPath.get(p);
    if (entry) return entry;
  }
  return undefined;
}

/** Whether the table splits `path` into sub-fields (each listed). */
export function isSplit(path: string): boolean {
  return split.has(path);
}

export interface UnsupportedField {
  readonly path: string;
  readonly why: string;
  readonly neverIgnored: boolean;
}

function refuses(entry: FieldSupport, value: unknown): boolean {
  if (entry.accepts) return !entry.accepts(value);
  return entry.support === 'refused';
}

/**
 * The fields of a Cluster `spec` that ask for something pgim does not do, in the table's order of paths. A field
 * that is absent or null asks for nothing; a field outside CNPG's Cluster (a typo in a split object) is refused too.
 */
export function unsupportedFields(spec: unknown): UnsupportedField[] {
  const found: UnsupportedField[] = [];
  const visit = (path: string, value: unknown): void => {
    if (value === undefined || value === null) return;
    if (isSplit(path) && isRecord(value)) {
      for (const [key, child] of Object.entries(value)) visit(`${path}.${key}`, child);
      return;
    }
    const entry = byPath.get(path);
    if (!entry) {
      found.push({ path, why: "is not a field of CloudNativePG's Cluster", neverIgnored: false });
      return;
    }
    if (refuses(entry, value)) found.push({ path, why: `is not implemented by pgim: ${entry.why}${entry.accepted === undefined ? '' : ` (accepted: ${entry.accepted})`}`, neverIgnored: entry.neverIgnored === true });
  };
  if (isRecord(spec)) for (const [key, child] of Object.entries(spec)) visit(`spec.${key}`, child);
  return found;
}

const annotationField = `metadata.annotations.${ignoreUnsupportedFieldsAnnotation}`;

/** Says once which fields pgim ignores because the Cluster's annotation asks it to. */
export function warnIgnoredFields(ignored: readonly string[], logger: { warn: (message: string) => void }): void {
  if (ignored.length > 0) logger.warn(`ignoring fields pgim does not implement, as the Cluster's annotation ${ignoreUnsupportedFieldsAnnotation} asks: ${ignored.join(', ')}`);
}

/** The paths listed in the annotation; throws ConfigError when it is not a JSON list of fields pgim may ignore. */
export function ignoredFields(annotations: Readonly<Record<string, string>>, source: string): string[] {
  const raw = annotations[ignoreUnsupportedFieldsAnnotation];
  if (raw === undefined || raw.trim() === '') return [];
  let list: unknown;
  try {
    list = JSON.parse(raw);
  } catch {
    list = undefined;
  }
  if (!Array.isArray(list) || !list.every((item): item is string => typeof item === 'string')) {
    throw new ConfigError(source, annotationField, 'must be a JSON list of field paths, e.g. ["spec.backup"]');
  }
  for (const path of list) {
    const entry = byPath.get(path);
    if (entry === undefined || (entry.support !== 'refused' && entry.accepts === undefined)) {
      throw new ConfigError(source, annotationField, `lists ${path}, which is not a field pgim refuses (see the README's table of Cluster fields)`);
    }
    if (entry.neverIgnored === true) throw new ConfigError(source, annotationField, `lists ${path}, which pgim never ignores: ${entry.why}`);
  }
  return list;
}

/**
 * Refuses a Cluster that sets a field pgim does not implement (ConfigError, the field named: exit 3 at start, a
 * configuration error while running), unless the annotation lists it and it may be ignored. Returns the fields
 * ignored by the annotation, for a warning.
 */
export function refuseUnsupportedFields(spec: unknown, annotations: Readonly<Record<string, string>>, source: string): string[] {
  const ignored = ignoredFields(annotations, source);
  const covered = (path: string): boolean => ignored.some((p) => path === p || path.startsWith(`${p}.`));
  const unsupported = unsupportedFields(spec);
  const refused = unsupported.filter((field) => field.neverIgnored || !covered(field.path));
  const [first, ...others] = refused;
  if (first === undefined) return unsupported.map((field) => field.path);
  const hint = first.neverIgnored ? 'no annotation accepts ignoring it' : `to run without it, list it in the annotation ${ignoreUnsupportedFieldsAnnotation}`;
  const also = others.length === 0 ? '' : `; also refused: ${others.map((field) => field.path).join(', ')}`;
  throw new ConfigError(source, first.path, `${first.why}; ${hint}${also}`);
}
