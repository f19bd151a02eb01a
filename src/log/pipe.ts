import { execFileSync } from 'node:child_process';
import { constants, openSync } from 'node:fs';
import { lstat, rm } from 'node:fs/promises';
import { Socket, type OnReadOpts, type SocketConstructorOpts } from 'node:net';
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
 * The csvlog FIFO is read in batches. The logging collector writes each record with its own write(2), and a reader
 * that waits in epoll wakes up for nearly each one; per wake-up costs (the wake-up itself, epoll, the read and the
 * write to stdout, the event loop's turn) were most of the pipe's CPU, and that CPU is taken from PostgreSQL on the
 * same cores. So after a read below `gatherBelowBytes` reading stops for `gatherMs` (the records wait in the pipe,
 * no wake-up) and the next read takes what came meanwhile: under `pgbench -S` with `log_statement = all` (8,000
 * records/s) 20 wake-ups a second of ~400 records each. Only with the pipe enlarged to `pipeBytes`: at PostgreSQL's
 * fastest logging (~10 MB/s here) a pause fills half of it, and a read of `gatherBelowBytes` or more is followed at
 * once by the next, so the logging collector does not wait for pgim. Reads go into one reused buffer.
 */
const pipeBytes = 1024 * 1024;
const readBytes = 256 * 1024;
const gatherBelowBytes = 64 * 1024;
const gatherMs = 50;

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
    this.readCsv(this.csvPath, (chunk) => {
      this.relay(converter, chunk);
    });
    this.read(this.rawPath, (socket) => {
      createInterface({ input: socket, crlfDelay: Infinity }).on('line', (line) => {
        this.rawLogger.info({ source: this.rawPath }, redactHbaSecrets(line));
      });
    });
  }

  /** The descriptor of a FIFO, enlarged to `pipeBytes` where allowed; the size granted (0: the default one). */
  private open(path: string): { fd: number; pipeSize: number } {
    // O_RDWR on a FIFO never blocks on Linux, and the socket takes ownership of the descriptor.
    const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
    const native = nativeCalls();
    let pipeSize = 0;
    try {
      if (!(native instanceof Error)) pipeSize = native.setPipeSize(fd, pipeBytes);
    } catch (err) {
      // Above /proc/sys/fs/pipe-max-size, or a user over its pipe quota: the default pipe, read as data comes.
      this.rawLogger.info({ error: (err as Error).message, path }, 'log pipe keeps its default size');
    }
    return { fd, pipeSize };
  }

  private watch(socket: Socket, path: string): Socket {
    this.sockets.push(socket);
    socket.on('error', (err) => {
      this.rawLogger.warn({ error: err.message, path }, 'log pipe read error');
    });
    return socket;
  }

  /**
   * The csvlog FIFO through a socket reading into one reused buffer (`onread`): no Buffer and no stream event per
   * read, and pausing really stops reading (a streaming socket keeps reading into its queue while paused).
   */
  private readCsv(path: string, consume: (chunk: Buffer) => void): void {
    const { fd, pipeSize } = this.open(path);
    const gather = pipeSize >= pipeBytes;
    const buffer = Buffer.allocUnsafe(readBytes);
    // One timer, re-armed by refresh() after each short read.
    let resume: NodeJS.Timeout | undefined;
    const socket: Socket = this.watch(
      new Socket(<SocketConstructorOpts & { onread: OnReadOpts }>{
        fd,
        readable: true,
        writable: false,
        onread: {
          buffer,
          callback: (bytes: number) => {
            consume(buffer.subarray(0, bytes));
            if (!gather || bytes >= gatherBelowBytes) return true;
            if (resume) resume.refresh();
            else resume = setTimeout(() => socket.resume(), gatherMs).unref();
            // Stops reading at the handle only (the stream itself stays flowing, so resume() is one read start).
            return false;
          },
        },
      }),
      path,
    );
  }

  private read(path: string, consume: (socket: Socket) => void): void {
    const { fd } = this.open(path);
    consume(this.watch(new Socket({ fd, readable: true, writable: false }), path));
  }

  /**
   * One timestamp per chunk read (its records arrived together). Common records go through the byte fast path in
   * one write; the others (non-ASCII, pgaudit, not csvlog) through the string path, in arrival order.
   */
  private relay(converter: CsvToJsonLines, chunk: Buffer): void {
    if (!this.records.enabled) return;
    const ts = new Date().toISOString();
    converter.push(chunk, Buffer.from(`${this.records.prefix('postgres', ts)}{`), {
      lines: (bytes, mayHoldRedacted) => {
        this.records.writeBytes(mayHoldRedacted ? redactJsonLines(bytes) : bytes);
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
