const includeBlock = `
# load pgim (CloudNativePG-compatible) custom.conf configuration
include 'custom.conf'

# load pgim (CloudNativePG-compatible) override.conf configuration
include 'override.conf'
`;

/** Appends the include lines to initdb's postgresql.conf once; idempotent. */
export function ensureIncludes(postgresqlConf: string): string {
  const hasCustom = /^\s*include\s+'custom\.conf'\s*$/m.test(postgresqlConf);
  const hasOverride = /^\s*include\s+'override\.conf'\s*$/m.test(postgresqlConf);
  if (hasCustom && hasOverride) return postgresqlConf;
  const base = postgresqlConf.endsWith('\n') || postgresqlConf === '' ? postgresqlConf : `${postgresqlConf}\n`;
  return base + includeBlock;
}
