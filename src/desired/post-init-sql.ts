import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PostInitSql, SqlRef } from '../cluster/initdb.js';
import type { Cluster } from '../cluster/schema.js';
import type { ControlPlane } from '../controlplane/index.js';
import { ConfigError } from '../errors/index.js';
import type { PostInitRefsFolders } from '../options/index.js';
import type { PostInitScripts, SqlScript } from '../postgres/post-init.js';

/**
 * The post-init SQL of `bootstrap.initdb`, read once, just before the bootstrap: the inline queries, then each
 * referenced key, Secrets first, then ConfigMaps (CNPG's order). Refs come from the control plane (the config
 * folder's secrets/ and configmaps/, or the API server), or, under CNPG's operator, from the folders its Job mounts
 * them in (`--post-init-*-sql-refs-folder`: every file, sorted by name, as CNPG's executeSQLRefs reads them).
 * A missing Secret, ConfigMap or key stops the bootstrap before initdb (ConfigError naming it).
 */
export async function readPostInitScripts(cluster: Cluster, controlPlane: ControlPlane, folders: PostInitRefsFolders = {}): Promise<PostInitScripts> {
  const { postInit } = cluster.bootstrap.initdb;
  const read = async (part: PostInitSql, folder: string | undefined): Promise<SqlScript[]> => {
    const inline = part.queries.map((sql, i): SqlScript => ({ field: `${part.field}[${String(i)}]`, source: controlPlane.clusterSource, sql, secret: false }));
    const refs = folder === undefined ? await Promise.all(part.refs.map((ref) => readRef(controlPlane, ref))) : await readFolder(folder, `${part.field}Refs`);
    return [...inline, ...refs];
  };
  return {
    postgres: await read(postInit.postgres, folders.postgres),
    template: await read(postInit.template, folders.template),
    application: await read(postInit.application, folders.application),
  };
}

async function readRef(controlPlane: ControlPlane, ref: SqlRef): Promise<SqlScript> {
  const source = `${ref.kind === 'Secret' ? 'secret' : 'configmap'} ${ref.name}`;
  const data = ref.kind === 'Secret' ? await controlPlane.readSecret(ref.name) : await controlPlane.readConfigMap(ref.name);
  if (data === undefined) throw new ConfigError(source, '', `does not exist (${ref.field})`);
  const bytes = data.get(ref.key);
  if (bytes === undefined) throw new ConfigError(source, ref.key, `no such key (${ref.field})`);
  return { field: ref.field, source: `${source} key ${ref.key}`, sql: bytes.toString('utf8'), secret: ref.kind === 'Secret' };
}

async function readFolder(folder: string, field: string): Promise<SqlScript[]> {
  const names = (await readdir(folder)).filter((name) => !name.startsWith('.')).sort();
  // The folder mixes Secrets and ConfigMaps: treat every file as possibly secret.
  return Promise.all(names.map(async (name) => ({ field, source: join(folder, name), sql: await readFile(join(folder, name), 'utf8'), secret: true })));
}
