// The daemon's WAL archiver (src/backup/wal-archiver.ts) alone, for B17 and B18: the PostgreSQL of those benchmarks
// runs under pg_ctl, so this hosts the part of `pgim run` that archive_command talks to (its socket in the runtime
// dir), as the service user. Usage: node wal-archiver-host.js <runtimeDir> <pgdata> [--no-ready-watch] [--trace FILE];
// prints "ready", runs until SIGTERM, then prints its counters. --no-ready-watch: uploads start only when PostgreSQL
// asks (the reference the ready-watch is measured against). --trace: one JSON line per step of each segment
// (`{"t": epoch ms, "wal": name, "event": ...}`), B17's per-segment timeline.
import { appendFileSync } from 'node:fs';
import { pino } from 'pino';
import { WalArchiver } from '../src/backup/wal-archiver.js';

const [runtimeDir, pgdata, ...flags] = process.argv.slice(2);
if (runtimeDir === undefined || pgdata === undefined) throw new Error('usage: wal-archiver-host <runtimeDir> <pgdata>');
const traceIndex = flags.indexOf('--trace');
const traceFile = traceIndex < 0 ? undefined : flags[traceIndex + 1];
const archiver = new WalArchiver({
  runtimeDir,
  pgdata,
  logger: pino({ level: 'warn' }),
  readyWatch: !flags.includes('--no-ready-watch'),
  ...(traceFile === undefined ? {} : { trace: (wal: string, event: string) => { appendFileSync(traceFile, `${JSON.stringify({ t: Date.now(), wal, event })}\n`); } }),
});
await archiver.start();
process.stdout.write('ready\n');
const keepAlive = setInterval(() => undefined, 1 << 30);
process.on('SIGTERM', () => {
  clearInterval(keepAlive);
  archiver.stop();
  process.stdout.write(`${JSON.stringify(archiver.stats)}\n`);
});
