import { strict as assert } from 'node:assert';
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRootLogger } from '../../src/log/logger.js';
import { LogPipe } from '../../src/log/pipe.js';
import { eventually, makeTempDir, removeTempDir } from '../../test-kit/env.js';

/** A PostgreSQL 15 statement record (26 fields), numbered by its session_line_num. */
function record(n: number, message = `statement: SELECT ${n}`): string {
  return (
    `2026-12-05 11:00:00.123 UTC,"app","app",4242,"127.0.0.1:45678",656f1a2b.1092,${n},"SELECT",2026-12-05 11:00:00 UTC,4/${n},0,` +
    `LOG,00000,"${message.replace(/"/g, '""')}",,,,,,,,,"pgbench","client backend",,0\n`
  );
}

describe('log pipe: batched reading of the csvlog FIFO', function () {
  this.timeout(120_000);
  let dir: string;
  let pipe: LogPipe;
  let fd: number;
  const output: string[] = [];

  before(async () => {
    dir = await makeTempDir('log-pipe');
    const logger = createRootLogger({ pod: 'pipe-1', destination: { write: (text: string) => void output.push(text) } });
    pipe = new LogPipe(dir, logger);
    await pipe.start();
    fd = openSync(pipe.csvPath, constants.O_WRONLY | constants.O_NONBLOCK);
  });

  after(async () => {
    closeSync(fd);
    pipe.stop();
    await removeTempDir(dir);
  });

  /** The JSON records relayed so far (pgim's own log lines left out). */
  const records = (): Record<string, string>[] =>
    output
      .join('')
      .split('\n')
      .filter((line) => line.includes('"msg":"record"'))
      .map((line) => (JSON.parse(line) as { record: Record<string, string> }).record);

  it('relays every record, in order, when each comes in its own write (as the logging collector writes them)', async () => {
    const total = 3000;
    let n = 0;
    // Bursts with pauses in between, so reading stops and resumes many times; a non-ASCII record (the string path)
    // and one holding an LDAP bind password (redacted) among them.
    while (n < total) {
      for (let i = 0; i < 150 && n < total; i += 1) {
        n += 1;
        const message = n === 1000 ? 'statement: SELECT \'héllo\'' : n === 2000 ? 'host all all ldap ldapbindpasswd=s3cret ldapport=1' : `statement: SELECT ${n}`;
        writeSync(fd, record(n, message));
      }
      await sleep(7);
    }
    const relayed = await eventually(() => Promise.resolve(records().length >= total ? records() : undefined), 60_000, `${total} records relayed`);
    assert.deepEqual(
      relayed.map((r) => Number(r.session_line_num)),
      Array.from({ length: total }, (_, i) => i + 1),
    );
    assert.equal(relayed[999]?.message, "statement: SELECT 'héllo'");
    assert.equal(relayed[1999]?.message, 'host all all ldap ldapbindpasswd=******** ldapport=1');
    assert.ok(!output.join('').includes('s3cret'));
  });

  it('relays a burst larger than one read whole, records split across reads included', async () => {
    output.length = 0;
    // ~570 KB in one write: more than a read takes (256 KiB), less than the enlarged pipe holds (1 MiB).
    const burst = Buffer.from(Array.from({ length: 2000 }, (_, i) => record(10_000 + i, `statement: SELECT '${'x'.repeat(40 + (i % 97))}'`)).join(''));
    assert.ok(burst.length > 512 * 1024 && burst.length < 1024 * 1024);
    assert.equal(writeSync(fd, burst), burst.length);
    const relayed = await eventually(() => Promise.resolve(records().length >= 2000 ? records() : undefined), 60_000, 'the burst relayed');
    assert.deepEqual(
      relayed.map((r) => Number(r.session_line_num)),
      Array.from({ length: 2000 }, (_, i) => 10_000 + i),
    );
  });
});
