import type { Logger } from 'pino';
import type { InstanceState } from '../instance/state.js';
import type { SecurityWarning } from '../render/security-warnings.js';

/** A weakening setting is logged (warning) and kept in the state for `/pg/status` and the metric, at every apply. */
export function reportSecurityWarnings(warnings: readonly SecurityWarning[], logger: Logger, state?: InstanceState): void {
  if (state) state.securityWarnings = warnings;
  for (const warning of warnings) logger.warn({ kind: warning.kind, field: warning.field }, `${warning.field}: ${warning.message}`);
}
