import type { Cluster } from '../cluster/schema.js';
import { ConfigError } from '../errors/index.js';
import { renderCustomConf } from './custom-conf.js';
import { renderPgHba, renderPgIdent } from './hba.js';
import { validateUserParameters } from './parameters.js';

export { ensureIncludes } from './postgresql-conf.js';
export { configHashParameter } from './custom-conf.js';

export interface RenderInput {
  cluster: Cluster;
  /** Names the manifest in errors (a file path or `cluster <name>`). */
  source: string;
  osUser: string;
  port: number;
  listenAddresses: string;
  socketDirectory: string;
}

/** Everything pgim writes into PGDATA, as bytes-to-be. Pure: the same input gives the same output. */
export interface RenderedConfiguration {
  customConf: string;
  overrideConf: string;
  pgHba: string;
  pgIdent: string;
  configHash: string;
}

function checkLines(lines: readonly string[], source: string, field: string): void {
  lines.forEach((line, index) => {
    // One entry must stay one line: a line break would smuggle in extra rules.
    if (/[\r\n\0]/.test(line)) throw new ConfigError(source, `${field}[${index}]`, 'contains a line break or NUL');
  });
}

export function renderConfiguration(input: RenderInput): RenderedConfiguration {
  const { cluster, source } = input;
  checkLines(cluster.pgHba, source, 'spec.postgresql.pg_hba');
  checkLines(cluster.pgIdent, source, 'spec.postgresql.pg_ident');
  const custom = renderCustomConf({
    clusterName: cluster.name,
    userParameters: validateUserParameters(cluster.parameters, source),
    port: input.port,
    listenAddresses: input.listenAddresses,
    socketDirectory: input.socketDirectory,
  });
  return {
    customConf: custom.text,
    overrideConf: '',
    pgHba: renderPgHba(cluster.pgHba),
    pgIdent: renderPgIdent(input.osUser, cluster.pgIdent),
    configHash: custom.hash,
  };
}
