import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';

export interface TestClusterOptions {
  name?: string;
  enableSuperuserAccess?: boolean;
  smartShutdownTimeout?: number;
  stopDelay?: number;
  parameters?: Record<string, string>;
  pgHba?: string[];
  pgIdent?: string[];
  annotations?: Record<string, string>;
  /** Extra spec fields, merged last. */
  spec?: Record<string, unknown>;
}

export interface TestSecrets {
  appPassword: string;
  superuserPassword: string;
}

export function clusterManifest(options: TestClusterOptions = {}): Record<string, unknown> {
  return {
    apiVersion: 'postgresql.cnpg.io/v1',
    kind: 'Cluster',
    metadata: { name: options.name ?? 'itest', ...(options.annotations ? { annotations: options.annotations } : {}) },
    spec: {
      instances: 1,
      enableSuperuserAccess: options.enableSuperuserAccess ?? false,
      smartShutdownTimeout: options.smartShutdownTimeout ?? 2,
      stopDelay: options.stopDelay ?? 30,
      bootstrap: { initdb: { database: 'app', owner: 'app' } },
      postgresql: {
        parameters: { shared_buffers: '16MB', max_connections: '30', ...options.parameters },
        pg_hba: options.pgHba ?? [],
        pg_ident: options.pgIdent ?? [],
      },
      ...options.spec,
    },
  };
}

/** Replaces cluster.yaml atomically (temp file + rename, as an editor or a ConfigMap update does). */
export async function writeClusterYaml(dir: string, options: TestClusterOptions): Promise<void> {
  const temp = join(dir, '.cluster.yaml.edit');
  await writeFile(temp, stringify(clusterManifest(options)));
  await rename(temp, join(dir, 'cluster.yaml'));
}

/** Writes a files-mode config folder: cluster.yaml plus `<cluster>-app` and `<cluster>-superuser` Secrets. */
export async function writeConfigDir(dir: string, options: TestClusterOptions, secrets: TestSecrets): Promise<void> {
  const name = options.name ?? 'itest';
  await mkdir(join(dir, 'secrets', `${name}-app`), { recursive: true });
  await mkdir(join(dir, 'secrets', `${name}-superuser`), { recursive: true });
  await writeFile(join(dir, 'cluster.yaml'), stringify(clusterManifest(options)));
  await writeFile(join(dir, 'secrets', `${name}-app`, 'username'), 'app');
  await writeFile(join(dir, 'secrets', `${name}-app`, 'password'), secrets.appPassword);
  await writeFile(join(dir, 'secrets', `${name}-superuser`, 'username'), 'postgres');
  await writeFile(join(dir, 'secrets', `${name}-superuser`, 'password'), secrets.superuserPassword);
}
