import type { StatusDocument } from './document.js';

export interface StatusResponse {
  httpStatus: number;
  document: (Partial<StatusDocument> & { error?: string }) | undefined;
  raw: string;
}

export async function fetchStatus(url: string, timeoutMs = 10_000): Promise<StatusResponse> {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const raw = await response.text();
  let document: StatusResponse['document'];
  try {
    document = JSON.parse(raw) as StatusResponse['document'];
  } catch {
    document = undefined;
  }
  return { httpStatus: response.status, document, raw };
}

function duration(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return [d > 0 ? `${d}d` : '', h > 0 ? `${h}h` : '', m > 0 ? `${m}m` : '', `${s}s`].join('');
}

/** A readable summary of `/pg/status` for people; `--json` prints the raw document instead. */
export function formatStatus(doc: NonNullable<StatusResponse['document']>): string {
  const rows: [string, string][] = [
    ['Instance', doc.pod?.metadata.name ?? '?'],
    ['Role', doc.isPrimary === undefined ? 'unknown' : doc.isPrimary ? 'primary' : 'replica'],
    ['Phase', doc.phase ?? '?'],
    ['Ready', doc.isPodReady === true ? 'yes' : 'no'],
    ['System ID', doc.systemID ?? '-'],
    ['Timeline', doc.timeLineID === undefined ? '-' : String(doc.timeLineID)],
    ['Current LSN', doc.currentLsn ?? '-'],
  ];
  if (doc.isPrimary === false) {
    rows.push(['Received LSN', doc.receivedLsn ?? '-'], ['Replayed LSN', doc.replayLsn ?? '-']);
    rows.push(['WAL receiver', doc.isWalReceiverActive === true ? 'streaming' : 'not streaming']);
  }
  rows.push(
    ['Pending restart', doc.pendingRestart === true ? 'yes' : 'no'],
    ['Postmaster PID', doc.postmasterPid === undefined ? '-' : String(doc.postmasterPid)],
    ['Postmaster since', doc.postmasterStartTime ?? '-'],
    ['Restarts', String(doc.restartCount ?? 0)],
    ['pgim uptime', doc.uptimeSeconds === undefined ? '-' : duration(doc.uptimeSeconds)],
    ['pgim version', doc.instanceManagerVersion ?? '-'],
  );
  for (const peer of doc.replicationInfo ?? []) {
    rows.push([`Replica ${peer.applicationName}`, `${peer.state} ${peer.syncState}, replay lag ${peer.replayLag || '0'}`]);
  }
  if (doc.lastError !== undefined) rows.push(['Last error', doc.lastError]);
  if (doc.error !== undefined) rows.push(['Error', doc.error]);
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join('\n');
}
