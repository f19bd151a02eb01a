import { execFileSync } from 'node:child_process';
import { constants, openSync } from 'node:fs';
import { lstat, rm } from 'node:fs/promises';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { nativeCalls } from '../process/native.js';
import { CsvRecordSplitter, parseCsvRecord } from './csvlog.js';
import { namedLogger } from './logger.js';

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
  private readonly csvLogger: Logger;
  private readonly auditLogger: Logger;
  private readonly rawLogger: Logger;
  records = 0;
  rawLines = 0;

  constructor(
    private readonly logDir: string,
    logger: Logger,
  ) {
    this.csvLogger = namedLogger(logger, 'postgres');
    this.auditLogger = namedLogger(logger, 'pgaudit');
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
        splitter.push(chunk, (text) => {
          this.emit(text);
        });
      });
    });
    this.read(this.rawPath, (socket) => {
      createInterface({ input: socket, crlfDelay: Infinity }).on('line', (line) => {
        this.rawLines++;
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

  private emit(text: string): void {
    if (text === '') return;
    const parsed = parseCsvRecord(text);
    if (parsed.kind === 'raw') {
      this.rawLines++;
      this.rawLogger.info({ source: this.csvPath }, parsed.text);
      return;
    }
    this.records++;
    (parsed.logger === 'pgaudit' ? this.auditLogger : this.csvLogger).info({ record: parsed.record }, 'record');
  }

  stop(): void {
    for (const socket of this.sockets) socket.destroy();
  }
}
