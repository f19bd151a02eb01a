import type { SystemContext } from './context.js';
import { FloorSystem } from './floor.js';
import { PatroniSystem } from './patroni.js';
import { PgimSystem } from './pgim.js';
import type { DatabaseSystem, SystemKind } from './types.js';

export function createSystem(kind: SystemKind, context: SystemContext): Promise<DatabaseSystem> {
  switch (kind) {
    case 'floor':
      return FloorSystem.create(context);
    case 'pgim':
      return PgimSystem.create(context);
    case 'patroni':
      return PatroniSystem.create(context);
  }
}
