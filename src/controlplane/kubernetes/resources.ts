/** The API resources pgim touches, and the shapes it reads from them. */

export interface ResourceType {
  /** `''` for the core group. */
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
}

export const clusters: ResourceType = { group: 'postgresql.cnpg.io', version: 'v1', plural: 'clusters', kind: 'Cluster' };
export const secrets: ResourceType = { group: '', version: 'v1', plural: 'secrets', kind: 'Secret' };
export const configMaps: ResourceType = { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap' };
export const events: ResourceType = { group: '', version: 'v1', plural: 'events', kind: 'Event' };
export const backups: ResourceType = { group: 'postgresql.cnpg.io', version: 'v1', plural: 'backups', kind: 'Backup' };
export const leases: ResourceType = { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', kind: 'Lease' };

export function apiVersionOf(type: ResourceType): string {
  return type.group === '' ? type.version : `${type.group}/${type.version}`;
}

export function collectionPath(type: ResourceType, namespace: string): string {
  const prefix = type.group === '' ? `/api/${type.version}` : `/apis/${type.group}/${type.version}`;
  return `${prefix}/namespaces/${encodeURIComponent(namespace)}/${type.plural}`;
}

export function objectPath(type: ResourceType, namespace: string, name: string, subresource?: string): string {
  return `${collectionPath(type, namespace)}/${encodeURIComponent(name)}${subresource === undefined ? '' : `/${subresource}`}`;
}

/** What a request does, in RBAC's terms, so a refusal names exactly the rule that is missing. */
export interface ApiAction {
  readonly verb: 'get' | 'list' | 'watch' | 'create' | 'patch' | 'update' | 'delete';
  readonly type: ResourceType;
  readonly subresource?: string;
  readonly namespace: string;
  readonly name?: string;
}

/** `patch clusters/status.postgresql.cnpg.io "demo" in namespace "db"`: the words of a Role rule. */
export function describeAction(action: ApiAction): string {
  const resource = `${action.type.plural}${action.subresource === undefined ? '' : `/${action.subresource}`}`;
  const qualified = action.type.group === '' ? resource : `${resource}.${action.type.group}`;
  const name = action.name === undefined ? '' : ` "${action.name}"`;
  return `${action.verb} ${qualified}${name} in namespace "${action.namespace}"`;
}

/** Log fields for an action, so log queries can filter on them. */
export function actionFields(action: ApiAction): Record<string, string> {
  return {
    verb: action.verb,
    resource: `${action.type.plural}${action.subresource === undefined ? '' : `/${action.subresource}`}`,
    apiGroup: action.type.group,
    namespace: action.namespace,
    ...(action.name === undefined ? {} : { name: action.name }),
  };
}

export interface ObjectMeta {
  readonly name?: string;
  readonly namespace?: string;
  readonly uid?: string;
  readonly resourceVersion?: string;
  readonly generation?: number;
  readonly creationTimestamp?: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** Any API object, as JSON; fields pgim uses are checked where they are read. */
export interface KubeObject {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata?: ObjectMeta;
  readonly [field: string]: unknown;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function asKubeObject(value: unknown): KubeObject {
  if (!isRecord(value)) throw new Error('the API server sent something that is not an object');
  const metadata = value.metadata;
  if (metadata !== undefined && !isRecord(metadata)) throw new Error('the API server sent an object with invalid metadata');
  return value;
}
