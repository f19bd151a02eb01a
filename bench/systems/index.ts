import { CnpgSystem } from './cnpg.js';
import type { SystemContext } from './context.js';
import { FloorSystem } from './floor.js';
import { PatroniSystem } from './patroni.js';
import { PgimK8sSystem } from './pgim-k8s.js';
import { PgimSystem } from './pgim.js';
import type { DatabaseSystem, SystemKind } from './types.js';

/** `parameters`: PostgreSQL settings a benchmark adds for every system alike (on top of the shared ones). */
export function createSystem(kind: SystemKind, context: SystemContext, parameters: Readonly<Record<string, string>> = {}): Promise<DatabaseSystem> {
  switch (kind) {
    case 'floor':
      return FloorSystem.create(context, parameters);
    case 'pgim':
      return PgimSystem.create(context, { smartShutdownTimeout: 5, parameters });
    case 'patroni':
      return PatroniSystem.create(context, parameters);
    case 'cnpg':
      return CnpgSystem.create(context, { parameters });
    case 'pgim-k8s':
      return PgimK8sSystem.create(context, { parameters });
  }
}
