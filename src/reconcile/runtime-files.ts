import type { Logger } from 'pino';
import { writeArchiveSettings } from '../backup/runtime.js';
import { writeRestoreSettings } from '../backup/restore-runtime.js';
import type { DesiredState } from '../desired/state.js';
import { writeFileAtomic } from '../fs/atomic.js';
import { renderPgpass } from '../render/pgpass.js';
import { writeTlsMaterial } from '../tls/files.js';
import { removeExternalFiles, writeExternalFiles } from '../replication/external.js';

const warnDays = 30;

/** Writes what lives in the runtime dir: the passfile and the TLS material (all 0600, atomically). */
export async function writeRuntimeFiles(desired: DesiredState, logger: Logger): Promise<void> {
  const entries = [desired.credentials.owner, ...(desired.credentials.superuser ? [desired.credentials.superuser] : [])];
  await writeFileAtomic(desired.layout.pgpassFile, renderPgpass(entries, desired.port), 0o600);
  // PostgreSQL itself calls archive_command only while it is a primary (archive_mode = on), so a former primary
  // still archives what it wrote before its demotion: no segment is left out across a switchover.
  await writeArchiveSettings({ runtimeDir: desired.layout.root, cluster: desired.cluster, podName: desired.topology.self, archiver: true, backup: desired.backup });
  await writeRestoreSettings({ runtimeDir: desired.layout.root, cluster: desired.cluster, isPrimary: desired.topology.isPrimary, backup: desired.backup, follow: desired.replicaArchive });
  if (desired.replicaSource === undefined) {
    // Not (or no longer, once promoted) a designated primary: no other cluster's key stays behind.
    await removeExternalFiles(desired.layout.root);
  } else if (await writeExternalFiles(desired.replicaSource)) {
    logger.info({ source: desired.replicaSource.name }, 'replica cluster source credentials written');
  }
  if (!desired.tls) return;
  if (await writeTlsMaterial(desired.layout.certificatesDir, desired.tls)) {
    logger.info({ certificates: desired.tls.facts.map(({ secret, facts }) => ({ secret, serial: facts.serial })) }, 'TLS material written');
  }
  for (const { secret, facts } of desired.tls.facts) {
    const days = (facts.notAfter.getTime() - Date.now()) / 86_400_000;
    if (days < warnDays) logger.warn({ secret, notAfter: facts.notAfter.toISOString(), days: Math.floor(days) }, 'certificate expires soon');
  }
}
