import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeConfigDir, type TestClusterOptions } from '../../test-kit/config.js';
import { freePort, handToPostgres, makeTempDir, removeTempDir } from '../../test-kit/env.js';
import { killPostmaster, PgimProcess, pgimEntry, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';

export interface ClusterInstance {
  name: string;
  paths: PgimPaths;
  ports: PgimPorts;
  pgim?: PgimProcess;
}

export interface LocalCluster {
  base: string;
  configDir: string;
  instances: ClusterInstance[];
  start(instance: ClusterInstance, env?: NodeJS.ProcessEnv): PgimProcess;
  certs(out: string, cluster?: string): string;
  stop(): Promise<void>;
}

/**
 * A files-mode cluster on 127.0.0.1, as `scripts/cluster.sh` runs it: one config folder with the
 * `<cluster>-hosts` ConfigMap and `pgim certs` material, one pgim per instance. Starts the primary, then replicas.
 */
export async function startLocalCluster(
  size: number,
  options: TestClusterOptions,
  secrets: { appPassword: string; superuserPassword: string },
  /** Adds to the config folder before anything starts (e.g. another Secret). */
  prepare: (configDir: string) => Promise<void> = () => Promise.resolve(),
): Promise<LocalCluster> {
  const clusterName = options.name ?? 'itest';
  const base = await makeTempDir('cluster');
  const configDir = join(base, 'config');
  await writeConfigDir(configDir, { ...options, spec: { instances: size, ...options.spec } }, secrets);
  await mkdir(join(configDir, 'configmaps', `${clusterName}-hosts`), { recursive: true });
  const instances: ClusterInstance[] = [];
  for (let n = 1; n <= size; n++) {
    const name = `${clusterName}-${n}`;
    const ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
    instances.push({ name, ports, paths: { configDir, pgdata: join(base, `pgdata-${n}`), runtimeDir: join(base, `runtime-${n}`) } });
    await writeFile(join(configDir, 'configmaps', `${clusterName}-hosts`, name), `127.0.0.1:${ports.pgPort}`);
  }
  const certs = (out: string, cluster = clusterName): string =>
    execFileSync(process.execPath, [pgimEntry, 'certs', '--cluster', cluster, '--instances', String(size), '--out', out], { encoding: 'utf8' });
  certs(join(configDir, 'secrets'));
  await prepare(configDir);
  await handToPostgres(configDir);
  const cluster: LocalCluster = {
    base,
    configDir,
    instances,
    certs,
    start(instance, env = {}) {
      instance.pgim = new PgimProcess('run', instance.paths, instance.ports, ['--pod-name', instance.name], env);
      return instance.pgim;
    },
    async stop() {
      for (const i of instances) await i.pgim?.stop().catch(() => killPostmaster(i.paths.pgdata));
      await removeTempDir(base);
    },
  };
  const [first, ...rest] = instances;
  if (first) await cluster.start(first).waitReady();
  for (const replica of rest) cluster.start(replica);
  for (const replica of rest) await replica.pgim?.waitReady(120_000);
  return cluster;
}
