import type { Logger } from 'pino';
import type { InstanceState } from '../instance/state.js';
import type { SecurityWarning } from '../render/security-warnings.js';

/**
 * A weakening setting is logged (warning) and kept in the state for `/pg/status` and the metric. With a state, only
 * a change is logged: a periodic re-read of the same configuration does not repeat the lines.
 */
export function reportSecurityWarnings(warnings: readonly SecurityWarning[], logger: Logger, state?: InstanceState): void {
  if (state) {
    const unchanged = JSON.stringify(state.securityWarnings) === JSON.stringify(warnings);
    state.securityWarnings = warnings;
    if (unchanged) return;
  }
  for (const warning of warnings) logger.warn({ kind: warning.kind, field: warning.field }, `${warning.field}: ${warning.message}`);
}
