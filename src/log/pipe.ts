import { execFileSync } from 'node:child_process';
import { constants, openSync } from 'node:fs';
import { lstat, rm } from 'node:fs/promises';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { nativeCalls } from '../process/native.js';
import { CsvToJsonLines } from './csvlog-bytes.js';
import { formatCsvRecord } from './csvlog.js';
import { redactHbaSecrets, redactJsonLines, redactRecordJson } from './redact.js';
import { namedLogger, recordWriter, type RecordWriter } from './logger.js';

/** mkfifo(3) through the addon, or coreutils' mkfifo where the addon is not built. */
function makeFifo(path: string): void {
  const native = nativeCalls();
  if (native instanceof Error) execFileSync('mkfifo', ['-m', '0600', path]);
  else native.mkfifo(path, 0o600);
}

/**
 * Under a flood, records are read in batches: after a short read (the pipe held little) reading waits `gatherMs`,
 * so each wake-up (read, parse, one write to stdout) handles many records instead of one; per-read costs were most
 * of the pipe's CPU. Only with a pipe enlarged to `pipeBytes`: at PostgreSQL's fastest logging (~10 MB/s here) a
 * pause fills a few percent of it, so the logging collector never waits for pgim. One read takes 64 KiB at most.
 */
const pipeBytes = 1024 * 1024;
const gatherBelowBytes = 16 * 1024;
const gatherMs = 5;

/**
 * PostgreSQL's log destination: `logging_collector` writes csvlog into `<logDir>/postgres.csv` and anything else
 * (stderr of extensions, for one) into `<logDir>/postgres`; both paths are FIFOs that pgim reads and re-emits as
 * JSON lines with CNPG's shape. Opened read-write so the pipe never sees EOF when the logging collector restarts,
 * and read through libuv's pipe handling (epoll), so it costs no thread. Writes to stdout are synchronous: if
 * stdout is slow, reading pauses and the FIFO fills, which is bounded back-pressure, not unbounded memory.
 */
export class LogPipe {
  private readonly sockets: Socket[] = [];
  private readonly records: RecordWriter;
  private readonly rawLogger: Logger;

  constructor(
    private readonly logDir: string,
    logger: Logger,
  ) {
    this.records = recordWriter(logger);
    this.rawLogger = namedLogger(logger, 'postgres');
  }

  get csvPath(): string {
    return join(this.logDir, 'postgres.csv');
  }

  get rawPath(): string {
    return join(this.logDir, 'postgres');
  }

  /** Creates both FIFOs (replacing anything else at those paths) and starts reading. */
  async start(): Promise<void> {
    for (const path of [this.csvPath, this.rawPath]) {
      const existing = await lstat(path).catch(() => undefined);
      if (existing && !existing.isFIFO()) await rm(path, { force: true });
      if (!existing?.isFIFO()) makeFifo(path);
    }
    const converter = new CsvToJsonLines();
    this.read(this.csvPath, (socket, pipeSize) => {
      const gather = pipeSize >= pipeBytes;
      socket.on('data', (chunk: Buffer) => {
        this.relay(converter, chunk);
        if (gather && chunk.length < gatherBelowBytes) {
          socket.pause();
          setTimeout(() => socket.resume(), gatherMs).unref();
        }
      });
    });
    this.read(this.rawPath, (socket) => {
      createInterface({ input: socket, crlfDelay: Infinity }).on('line', (line) => {
        this.rawLogger.info({ source: this.rawPath }, redactHbaSecrets(line));
      });
    });
  }

  private read(path: string, consume: (socket: Socket, pipeSize: number) => void): void {
    // O_RDWR on a FIFO never blocks on Linux, and the socket takes ownership of the descriptor.
    const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
    const native = nativeCalls();
    let pipeSize = 0;
    try {
      if (!(native instanceof Error)) pipeSize = native.setPipeSize(fd, pipeBytes);
    } catch (err) {
      // Above /proc/sys/fs/pipe-max-size, or a user over its pipe quota: the default pipe, read record by record.
      this.rawLogger.info({ error: (err as Error).message, path }, 'log pipe keeps its default size');
    }
    const socket = new Socket({ fd, readable: true, writable: false });
    this.sockets.push(socket);
    socket.on('error', (err) => {
      this.rawLogger.warn({ error: err.message, path }, 'log pipe read error');
    });
    consume(socket, pipeSize);
  }

  /**
   * One timestamp per chunk read (its records arrived together). Common records go through the byte fast path in
   * one write; the others (non-ASCII, pgaudit, not csvlog) through the string path, in arrival order.
   */
  private relay(converter: CsvToJsonLines, chunk: Buffer): void {
    if (!this.records.enabled) return;
    const ts = new Date().toISOString();
    converter.push(chunk, Buffer.from(`${this.records.prefix('postgres', ts)}{`), {
      lines: (bytes) => {
        this.records.writeBytes(redactJsonLines(bytes));
      },
      slow: (record) => {
        if (record.length === 0) return;
        const formatted = formatCsvRecord(record.toString('utf8'));
        if (formatted.kind === 'record') this.records.write(this.records.line(formatted.logger, ts, redactRecordJson(formatted.recordJson)));
        else this.rawLogger.info({ source: this.csvPath }, redactHbaSecrets(formatted.text));
      },
    });
  }

  stop(): void {
    for (const socket of this.sockets) socket.destroy();
  }
}
