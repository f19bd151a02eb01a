import type pg from 'pg';
import type { Logger } from 'pino';
import { errorMessage } from '../errors/index.js';

/**
 * CNPG's `/pg/mode/backup`: a non-exclusive base backup held open on one session across HTTP calls, so that a
 * volume snapshot taken in between is a valid backup (pkg/management/postgres/webserver/backup_connection.go).
 * POST starts it (`starting`, then `started` once pg_backup_start returned), PUT stops it (`closing`, then
 * `completed` with the backup label and tablespace map), GET reports where it is. The slow steps (the checkpoint,
 * pg_backup_stop) run after the reply, as in CNPG; a request that arrives meanwhile gets CNPG's retryable
 * `ANOTHER_REQUEST_IN_PROGRESS`. Nothing here touches a file: PostgreSQL writes nothing for a non-exclusive backup.
 */

/** CNPG's `BackupResultData` (labelFile and spcmapFile are Go []byte, so base64 in JSON). */
export interface BackupResultData {
  beginLSN?: string;
  endLSN?: string;
  labelFile?: string;
  spcmapFile?: string;
  backupName?: string;
  phase?: 'starting' | 'started' | 'closing' | 'completed';
}

export interface BackupReply {
  readonly status: number;
  readonly body: { data?: BackupResultData | Record<string, never>; error?: { code: string; message: string } };
}

interface CurrentBackup {
  readonly data: BackupResultData;
  readonly client: pg.Client;
  readonly immediateCheckpoint: boolean;
  readonly waitForArchive: boolean;
  error: string | undefined;
}

/** CNPG names the temporary slot after the backup, with anything outside `[a-z0-9_]` replaced by `_`. */
export function backupSlotName(backupName: string): string {
  return backupName.replace(/[^a-z0-9_]/g, '_');
}

const reply = (status: number, body: BackupReply['body']): BackupReply => ({ status, body });
const failure = (status: number, code: string, message: string): BackupReply => reply(status, { error: { code, message } });

export class BackupMode {
  private current: CurrentBackup | undefined;
  /** CNPG's `ongoingBackupRequest` mutex: held by a request and by the start/stop work that follows it. */
  private busy = false;

  constructor(
    /** A superuser session on the local instance, kept for the whole backup. */
    private readonly connect: () => Promise<pg.Client>,
    private readonly logger: Logger,
  ) {}

  /** GET: `{}` before any backup, else the backup's data (with CNPG's error code when it failed). */
  status(): BackupReply {
    if (this.busy) return failure(422, 'ANOTHER_REQUEST_IN_PROGRESS', '');
    const current = this.current;
    if (!current) return reply(200, { data: {} });
    return reply(200, {
      data: { ...current.data },
      ...(current.error === undefined ? {} : { error: { code: 'BACKUP_STATUS_CONTAINS_ERROR', message: current.error } }),
    });
  }

  /** POST: replaces any previous backup session and starts a new backup. */
  async start(request: { backupName: string; immediateCheckpoint: boolean; waitForArchive: boolean }): Promise<BackupReply> {
    if (this.busy) return failure(422, 'ANOTHER_REQUEST_IN_PROGRESS', '');
    this.busy = true;
    let client: pg.Client;
    try {
      await this.close();
      client = await this.connect();
    } catch (err) {
      this.busy = false;
      return failure(422, 'CANNOT_INITIALIZE_CONNECTION', errorMessage(err));
    }
    const current: CurrentBackup = {
      data: { backupName: request.backupName, phase: 'starting' },
      client,
      immediateCheckpoint: request.immediateCheckpoint,
      waitForArchive: request.waitForArchive,
      error: undefined,
    };
    this.current = current;
    this.logger.info({ backupName: request.backupName }, 'backup mode: starting a non-exclusive backup');
    const snapshot = { ...current.data };
    // The busy flag stays set until pg_backup_start returned (the checkpoint can take a while).
    void this.run(current, async () => {
      await client.query('SELECT pg_catalog.pg_create_physical_replication_slot(slot_name => $1, immediately_reserve => true, temporary => true)', [
        backupSlotName(request.backupName),
      ]);
      const { rows } = await client.query<{ lsn: string }>('SELECT pg_catalog.pg_backup_start(label => $1, fast => $2)::text AS lsn', [
        request.backupName,
        request.immediateCheckpoint,
      ]);
      const lsn = rows[0]?.lsn;
      if (lsn === undefined) throw new Error('pg_backup_start returned no row');
      current.data.beginLSN = lsn;
      current.data.phase = 'started';
    });
    return reply(200, { data: snapshot });
  }

  /** PUT: stops the named backup; GET then shows `completed` with the label and tablespace map. */
  stop(backupName: string): BackupReply {
    if (this.busy) return failure(422, 'ANOTHER_REQUEST_IN_PROGRESS', '');
    const current = this.current;
    if (!current) return failure(400, 'NO_ONGOING_BACKUP', '');
    if (current.data.backupName !== backupName) {
      return failure(422, 'NOT_CURRENT_RUNNING_BACKUP', `Phase is: ${String(current.data.phase)}`);
    }
    if (current.error !== undefined) {
      void current.client.end().catch(() => undefined);
      return failure(422, 'BACKUP_FAILED', current.error);
    }
    if (current.data.phase === 'closing') return reply(200, { data: { ...current.data } });
    if (current.data.phase !== 'started') {
      return failure(422, 'CANNOT_CLOSE_NOT_STARTED', `Phase is: ${String(current.data.phase)}`);
    }
    current.data.phase = 'closing';
    const snapshot = { ...current.data };
    this.busy = true;
    void this.run(current, async () => {
      try {
        const { rows } = await current.client.query<{ lsn: string; labelfile: string | null; spcmapfile: string | null }>(
          'SELECT lsn::text AS lsn, labelfile, spcmapfile FROM pg_catalog.pg_backup_stop(wait_for_archive => $1)',
          [current.waitForArchive],
        );
        const row = rows[0];
        if (!row) throw new Error('pg_backup_stop returned no row');
        current.data.endLSN = row.lsn;
        const base64 = (text: string | null | undefined): string | undefined =>
          text === null || text === undefined || text === '' ? undefined : Buffer.from(text, 'utf8').toString('base64');
        const label = base64(row.labelfile);
        const spcmap = base64(row.spcmapfile);
        if (label !== undefined) current.data.labelFile = label;
        if (spcmap !== undefined) current.data.spcmapFile = spcmap;
        current.data.phase = 'completed';
        this.logger.info({ backupName, endLSN: current.data.endLSN }, 'backup mode: backup completed');
      } finally {
        await current.client.end().catch(() => undefined);
      }
    });
    return reply(200, { data: snapshot });
  }

  /** Ends the session of a backup in progress (PostgreSQL then aborts it). */
  async close(): Promise<void> {
    const current = this.current;
    this.current = undefined;
    await current?.client.end().catch(() => undefined);
  }

  private async run(current: CurrentBackup, work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (err) {
      current.error = errorMessage(err);
      this.logger.error({ backupName: current.data.backupName, error: current.error }, 'backup mode: backup failed');
      await current.client.end().catch(() => undefined);
    } finally {
      this.busy = false;
    }
  }
}
