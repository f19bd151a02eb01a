// The daemon's WAL archiver (src/backup/wal-archiver.ts) alone, for B17 and B18: the PostgreSQL of those benchmarks
// runs under pg_ctl, so this hosts the part of `pgim run` that archive_command talks to (its socket in the runtime
// dir), as the service user. Usage: node wal-archiver-host.js <runtimeDir> <pgdata> [--no-ready-watch]; prints "ready",
// runs until SIGTERM, then prints its counters. --no-ready-watch: uploads start only when PostgreSQL asks (the
// reference the ready-watch is measured against).
import { pino } from 'pino';
import { WalArchiver } from '../src/backup/wal-archiver.js';

const [runtimeDir, pgdata, flag] = process.argv.slice(2);
if (runtimeDir === undefined || pgdata === undefined) throw new Error('usage: wal-archiver-host <runtimeDir> <pgdata>');
const archiver = new WalArchiver({ runtimeDir, pgdata, logger: pino({ level: 'warn' }), readyWatch: flag !== '--no-ready-watch' });
await archiver.start();
process.stdout.write('ready\n');
const keepAlive = setInterval(() => undefined, 1 << 30);
process.on('SIGTERM', () => {
  clearInterval(keepAlive);
  archiver.stop();
  process.stdout.write(`${JSON.stringify(archiver.stats)}\n`);
});
