import { execFileSync } from 'node:child_process';
import { constants, openSync } from 'node:fs';
import { lstat, rm } from 'node:fs/promises';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { nativeCalls } from '../process/native.js';
import { CsvRecordSplitter, formatCsvRecord } from './csvlog.js';
import { namedLogger, recordWriter, type RecordWriter } from './logger.js';

/** mkfifo(3) through the addon, or coreutils' mkfifo where the addon is not built. */
function makeFifo(path: string): void {
  const native = nativeCalls();
  if (native instanceof Error) execFileSync('mkfifo', ['-m', '0600', path]);
  else native.mkfifo(path, 0o600);
}

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
    const splitter = new CsvRecordSplitter();
    this.read(this.csvPath, (socket) => {
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        this.relay(splitter, chunk);
      });
    });
    this.read(this.rawPath, (socket) => {
      createInterface({ input: socket, crlfDelay: Infinity }).on('line', (line) => {
        this.rawLogger.info({ source: this.rawPath }, line);
      });
    });
  }

  private read(path: string, consume: (socket: Socket) => void): void {
    // O_RDWR on a FIFO never blocks on Linux, and the socket takes ownership of the descriptor.
    const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
    const socket = new Socket({ fd, readable: true, writable: false });
    this.sockets.push(socket);
    socket.on('error', (err) => {
      this.rawLogger.warn({ error: err.message, path }, 'log pipe read error');
    });
    consume(socket);
  }

  /** One timestamp and one write per chunk read (records in a chunk arrived together), in arrival order. */
  private relay(splitter: CsvRecordSplitter, chunk: string): void {
    const ts = new Date().toISOString();
    let lines = '';
    splitter.push(chunk, (text) => {
      if (text === '') return;
      const formatted = formatCsvRecord(text);
      if (formatted.kind === 'record') {
        if (this.records.enabled) lines += this.records.line(formatted.logger, ts, formatted.recordJson);
        return;
      }
      this.records.write(lines);
      lines = '';
      this.rawLogger.info({ source: this.csvPath }, formatted.text);
    });
    this.records.write(lines);
  }

  stop(): void {
    for (const socket of this.sockets) socket.destroy();
  }
}
