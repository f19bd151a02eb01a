// The pure parts of issue 24's items 5-9: PostgreSQL's own tokenisation of `@file`, locating bytes that are not
// UTF-8, the alias bomb, and the regular-file-only read.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { parseClusterManifest } from '../../src/cluster/parse.js';
import { decodeManifest, firstInvalidByte } from '../../src/cluster/utf8.js';
import { ConfigError } from '../../src/errors/index.js';
import { assertRegularFileSync, readConfined, readRegularFile } from '../../src/fs/confined.js';
import { checkHbaLine, checkIdentLine } from '../../src/render/hba-rules.js';

describe('faults: @file tokens as PostgreSQL 15 reads them (hba.c next_token / next_field_expand)', () => {
  const included = [
    ['pg_ident', 'm1 root @/etc/hostname'],
    ['pg_ident', 'm1 @users app'],
    ['pg_ident', 'm1 root @file#comment'],
    ['pg_hba', 'local all,@/etc/hostname all reject'],
    ['pg_hba', 'local all, @/etc/hostname all reject'],
    ['pg_hba', 'host app "x",@admins all scram-sha-256'],
    ['pg_hba', 'host all all all scram-sha-256 ,@x'],
  ] as const;
  for (const [file, line] of included) {
    it(`refuses ${file} ${JSON.stringify(line)}`, () => {
      const check = file === 'pg_hba' ? checkHbaLine : checkIdentLine;
      assert.throws(() => {
        check(line);
      }, /@file references are not allowed/);
    });
  }

  const literal = [
    ['pg_ident', 'm1 root "@literal"'],
    ['pg_ident', 'm1 root ""@literal'],
    ['pg_ident', 'm1 root @'],
    ['pg_hba', 'host all "@odd" all scram-sha-256'],
    ['pg_hba', 'host all all all scram-sha-256 # @comment'],
    ['pg_hba', 'host all u@example all scram-sha-256'],
  ] as const;
  for (const [file, line] of literal) {
    it(`accepts ${file} ${JSON.stringify(line)} (a literal @ to PostgreSQL)`, () => {
      const check = file === 'pg_hba' ? checkHbaLine : checkIdentLine;
      assert.doesNotThrow(() => {
        check(line);
      });
    });
  }
});

describe('faults: bytes that are not UTF-8', () => {
  it('finds the first invalid byte exactly where a fatal TextDecoder first fails', () => {
    const strict = new TextDecoder('utf-8', { fatal: true });
    const valid = (bytes: Uint8Array): boolean => {
      try {
        strict.decode(bytes);
        return true;
      } catch {
        return false;
      }
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        const at = firstInvalidByte(bytes);
        assert.equal(at === bytes.length, valid(bytes));
        assert.ok(valid(bytes.subarray(0, at)), 'the prefix before it is valid');
      }),
      { numRuns: 3000 },
    );
    fc.assert(fc.property(fc.string({ unit: 'binary' }), (text) => firstInvalidByte(Buffer.from(text)) === Buffer.byteLength(text)), { numRuns: 1000 });
  });

  it('names the field that holds the bad bytes: a value, a key, an item of a list', () => {
    const cases: [string, string][] = [
      ['spec:\n  postgresql:\n    parameters:\n      work_mem: "4MB\xff"\n', 'spec.postgresql.parameters.work_mem'],
      ['spec:\n  postgresql:\n    parameters:\n      w\xffrk_mem: 4MB\n', 'spec.postgresql.parameters.w\ufffdrk_mem'],
      ['spec:\n  postgresql:\n    pg_hba:\n      - host all all all trust\n      - "host \xfe"\n', 'spec.postgresql.pg_hba[1]'],
      ['# a comment \xff\nspec: {}\n', ''],
    ];
    for (const [text, field] of cases) {
      assert.throws(() => decodeManifest(Buffer.from(text, 'latin1'), 'c.yaml'), (err: unknown) => err instanceof ConfigError && err.field === field && /is not valid UTF-8 \(line \d\)/.test(err.problem));
    }
    assert.equal(decodeManifest(Buffer.from('a: "\u00e9\ufffd"\n'), 'c.yaml'), 'a: "\u00e9\ufffd"\n', 'a real U+FFFD is valid UTF-8');
  });
});

describe('faults: YAML aliases', () => {
  it('an alias bomb is a ConfigError naming the file, not an exception', () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i <= 9; i++) lines.push(`a${i}: &a${i} [${Array.from({ length: 9 }, () => `*a${i - 1}`).join(', ')}]`);
    assert.throws(
      () => parseClusterManifest(`${lines.join('\n')}\n`, '/cfg/cluster.yaml'),
      (err: unknown) => err instanceof ConfigError && err.source === '/cfg/cluster.yaml' && /YAML aliases cannot be expanded: Excessive alias count/.test(err.message),
    );
  });
});

describe('faults: only regular files are read', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgim-confined-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a FIFO and a link to a FIFO are refused before any open can block; a regular file is read', async () => {
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    await symlink('fifo', join(dir, 'link'));
    await assert.rejects(readConfined(dir, 'fifo', 1024), /is not a regular file/);
    await assert.rejects(readConfined(dir, 'link', 1024), /is not a regular file/);
    await writeFile(join(dir, 'plain'), 'ok');
    assert.equal((await readConfined(dir, 'plain', 1024)).toString(), 'ok');
  });

  it('Kubernetes credentials (token, CA, kubeconfig) too: a FIFO or a device is refused, never opened', async () => {
    execFileSync('mkfifo', [join(dir, 'token')]);
    await assert.rejects(readRegularFile(join(dir, 'token'), 1024), /is not a regular file/);
    await assert.rejects(readRegularFile('/dev/zero', 1024), /is not a regular file/);
    assert.throws(() => {
      assertRegularFileSync(join(dir, 'token'));
    }, /is not a regular file/);
  });
});
