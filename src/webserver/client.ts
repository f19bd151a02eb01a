import type { BackupStatus } from '../backup/service.js';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import type { ManagedRolesStatus } from '../instance/state.js';
import type { StatusDocument } from './document.js';

export interface StatusResponse {
  httpStatus: number;
  document: (Partial<StatusDocument> & { error?: string; backup?: BackupStatus }) | undefined;
  raw: string;
}

export interface FetchOptions {
  timeoutMs?: number;
  /** PEM CA bundle that signed the status server's certificate (`https://` URLs). */
  ca?: Buffer;
  /** Accept any server certificate (`https://` URLs); for a quick look only. */
  insecure?: boolean;
  /** Check the certificate against `ca` only, not the host name (CNPG's operator and `instance status` do so). */
  caOnly?: boolean;
}

/**
 * The status document's URL: an instance's base URL (`http://host:8000` or `…/`) means its `/pg/status`; any other
 * path is taken as given.
 */
export function statusDocumentUrl(url: string): URL {
  const target = new URL(url);
  if (target.pathname === '/' || target.pathname === '') target.pathname = '/pg/status';
  return target;
}

/** GET the status document over HTTP or HTTPS (CNPG's status port may run TLS 1.3 only). */
export function fetchStatus(url: string, options: FetchOptions = {}): Promise<StatusResponse> {
  const target = statusDocumentUrl(url);
  const timeout = options.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const onResponse = (res: import('node:http').IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        let document: StatusResponse['document'];
        try {
          document = JSON.parse(raw) as StatusResponse['document'];
        } catch {
          document = undefined;
        }
        resolve({ httpStatus: res.statusCode ?? 0, document, raw });
      });
    };
    const req =
      target.protocol === 'https:'
        ? httpsGet(
            target,
            {
              timeout,
              minVersion: 'TLSv1.3',
              rejectUnauthorized: options.insecure !== true,
              ...(options.ca ? { ca: options.ca } : {}),
              ...(options.caOnly === true ? { checkServerIdentity: () => undefined } : {}),
            },
            onResponse,
          )
        : httpGet(target, { timeout }, onResponse);
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeout} ms`)));
    req.on('error', reject);
  });
}

function duration(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return [d > 0 ? `${d}d` : '', h > 0 ? `${h}h` : '', m > 0 ? `${m}m` : '', `${s}s`].join('');
}

/** Columns padded to their widest cell; the first row is the header. */
function table(rows: readonly (readonly string[])[], indent = '  '): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => indent + r.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}

/** Archiving and the last base backup, from the `backup` part of /pg/status. */
function backupRows(backup: BackupStatus | undefined): [string, string][] {
  if (backup === undefined || !backup.configured) return [['Backups', 'not configured']];
  const rows: [string, string][] = [];
  const archiving = backup.archiving;
  rows.push(['Archiving', archiving === undefined ? 'no WAL archived yet' : archiving.ok ? `ok (${archiving.walName} at ${archiving.lastAttemptAt})` : `FAILING: ${archiving.error ?? ''}`]);
  const last = backup.lastBackup;
  rows.push(['Last backup', last === undefined ? (backup.lastSuccessfulBackup ?? 'none') : `${last.backupName} ${last.phase}${last.backupId === undefined ? '' : ` (id ${last.backupId})`}${last.error === undefined ? '' : `: ${last.error}`}`]);
  rows.push(['Last successful', backup.lastSuccessfulBackup ?? '-'], ['Recoverable from', backup.firstRecoverabilityPoint ?? '-']);
  if (backup.lastFailedBackup !== undefined) rows.push(['Last failed backup', backup.lastFailedBackup]);
  return rows;
}

/** spec.managed.roles: the roles per status, and why a role cannot be reconciled. */
function managedRoleRows(status: ManagedRolesStatus | undefined): [string, string][] {
  if (status === undefined) return [];
  const rows: [string, string][] = [];
  for (const [name, roles] of Object.entries(status.byStatus ?? {})) rows.push([`Roles ${name}`, roles.join(', ')]);
  for (const [role, reasons] of Object.entries(status.cannotReconcile ?? {})) rows.push([`Role ${role}`, `cannot reconcile: ${reasons.join('; ')}`]);
  return rows;
}

/** A readable summary of `/pg/status` for people; `--json` prints the raw document instead. */
export function formatStatus(doc: NonNullable<StatusResponse['document']>): string {
  const role = doc.isPrimary === undefined ? 'unknown' : doc.isPrimary ? 'primary' : 'replica';
  const rows: [string, string][] = [
    ['Instance', doc.pod?.metadata.name ?? '?'],
    ['Role', role],
    ['Phase', doc.phase ?? '?'],
    ['Ready', doc.isPodReady === true ? 'yes' : 'no'],
    ['System ID', doc.systemID ?? '-'],
    ['Timeline', doc.timeLineID === undefined ? '-' : String(doc.timeLineID)],
  ];
  if (doc.isPrimary === false) {
    rows.push(['Received LSN', doc.receivedLsn ?? '-'], ['Replayed LSN', doc.replayLsn ?? '-']);
    rows.push(['WAL receiver', doc.isWalReceiverActive === true ? 'streaming' : 'not streaming']);
    if (doc.replayPaused === true) rows.push(['Replay', 'paused']);
  } else {
    rows.push(['Current LSN', doc.currentLsn ?? '-'], ['Current WAL', doc.currentWAL ?? '-']);
  }
  rows.push(
    ['Pending restart', doc.pendingRestart === true ? 'yes' : 'no'],
    ['WAL ready to archive', doc.readyWalFiles === undefined ? '-' : String(doc.readyWalFiles)],
    ['Last archived WAL', doc.lastArchivedWAL ?? '-'],
    ['Postmaster PID', doc.postmasterPid === undefined ? '-' : String(doc.postmasterPid)],
    ['Postmaster since', doc.postmasterStartTime ?? '-'],
    ['Restarts', String(doc.restartCount ?? 0)],
    ['pgim uptime', doc.uptimeSeconds === undefined ? '-' : duration(doc.uptimeSeconds)],
    ['pgim version', doc.instanceManagerVersion ?? '-'],
  );
  rows.push(...backupRows(doc.backup));
  rows.push(...managedRoleRows(doc.managedRolesStatus));
  if (doc.configurationError !== undefined) rows.push(['Configuration error', doc.configurationError]);
  for (const warning of doc.securityWarnings ?? []) rows.push(['Security warning', `${warning.field}: ${warning.message}`]);
  if (doc.lastError !== undefined) rows.push(['Last error', doc.lastError]);
  if (doc.mightBeUnavailableMaskedError !== undefined) rows.push(['While restarting', doc.mightBeUnavailableMaskedError]);
  if (doc.error !== undefined) rows.push(['Error', doc.error]);
  const width = Math.max(...rows.map(([label]) => label.length));
  const out = [rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join('\n')];
  const peers = doc.replicationInfo ?? [];
  if (doc.isPrimary === true) {
    out.push('', peers.length === 0 ? 'Replication peers: none' : 'Replication peers:');
    if (peers.length > 0) {
      out.push(table([
        ['NAME', 'STATE', 'SYNC', 'SENT LSN', 'WRITE LSN', 'FLUSH LSN', 'REPLAY LSN', 'REPLAY LAG'],
        ...peers.map((p) => [p.applicationName, p.state, p.syncState, p.receivedLsn, p.writeLsn, p.flushLsn, p.replayLsn, p.replayLag || '0']),
      ]));
    }
  }
  const slots = doc.replicationSlotsInfo ?? [];
  if (slots.length > 0) {
    out.push('', 'Replication slots:');
    out.push(table([['NAME', 'TYPE', 'ACTIVE', 'RESTART LSN', 'WAL STATUS'], ...slots.map((s) => [s.slotName, s.slotType, s.active ? 'yes' : 'no', s.restartLsn, s.walStatus])]));
  }
  return out.join('\n');
}
