import type { Logger } from 'pino';
import type { DesiredState } from '../desired/state.js';
import { writeFileAtomic } from '../fs/atomic.js';
import { renderPgpass } from '../render/pgpass.js';
import { writeTlsMaterial } from '../tls/files.js';

const warnDays = 30;

/** Writes what lives in the runtime dir: the passfile and the TLS material (all 0600, atomically). */
export async function writeRuntimeFiles(desired: DesiredState, logger: Logger): Promise<void> {
  const entries = [desired.credentials.owner, ...(desired.credentials.superuser ? [desired.credentials.superuser] : [])];
  await writeFileAtomic(desired.layout.pgpassFile, renderPgpass(entries, desired.port), 0o600);
  if (!desired.tls) return;
  if (await writeTlsMaterial(desired.layout.certificatesDir, desired.tls)) {
    logger.info({ certificates: desired.tls.facts.map(({ secret, facts }) => ({ secret, serial: facts.serial })) }, 'TLS material written');
  }
  for (const { secret, facts } of desired.tls.facts) {
    const days = (facts.notAfter.getTime() - Date.now()) / 86_400_000;
    if (days < warnDays) logger.warn({ secret, notAfter: facts.notAfter.toISOString(), days: Math.floor(days) }, 'certificate expires soon');
  }
}
