import type { Cluster } from '../cluster/schema.js';
import { ConfigError } from '../errors/index.js';
import type { CnpgExpectations } from '../options/cnpg-invocation.js';

/**
 * A CNPG command line names the cluster, the application database and owner, and the node to clone from; the
 * operator derives them from the same Cluster pgim reads. When they disagree, pgim refuses (exit 3) instead of
 * bootstrapping something the command line did not ask for.
 */
export function checkCnpgExpectations(expectations: CnpgExpectations | undefined, cluster: Cluster, source: string): void {
  if (!expectations) return;
  const mismatch = (flag: string, said: string, field: string, actual: string): ConfigError =>
    new ConfigError(source, field, `the command line says --${flag} ${said}, the Cluster says ${actual}`);
  if (expectations.clusterName !== undefined && expectations.clusterName !== cluster.name) {
    throw mismatch('cluster-name', expectations.clusterName, 'metadata.name', cluster.name);
  }
  if (expectations.appDatabase !== undefined && expectations.appDatabase !== cluster.bootstrap.database) {
    throw mismatch('app-db-name', expectations.appDatabase, 'spec.bootstrap.initdb.database', cluster.bootstrap.database);
  }
  if (expectations.appUser !== undefined && expectations.appUser !== cluster.bootstrap.owner) {
    throw mismatch('app-user', expectations.appUser, 'spec.bootstrap.initdb.owner', cluster.bootstrap.owner);
  }
  if (expectations.parentNode !== undefined && expectations.parentNode !== `${cluster.name}-rw`) {
    throw mismatch('parent-node', expectations.parentNode, 'metadata.name', `${cluster.name} (parent ${cluster.name}-rw)`);
  }
}
