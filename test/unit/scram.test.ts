import { strict as assert } from 'node:assert';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { saslPrep, scramSha256Verifier } from '../../src/postgres/scram.js';

describe('SCRAM-SHA-256 verifier', () => {
  it('has pg_authid format and verifies against the password (RFC 7677 derivation)', () => {
    const salt = Buffer.from('0123456789abcdef');
    const verifier = scramSha256Verifier('pencil', salt);
    const match = /^SCRAM-SHA-256\$4096:([^$]+)\$([^:]+):(.+)$/.exec(verifier);
    assert.ok(match);
    assert.equal(match[1], salt.toString('base64'));
    const salted = pbkdf2Sync('pencil', salt, 4096, 32, 'sha256');
    const stored = createHash('sha256').update(createHmac('sha256', salted).update('Client Key').digest()).digest('base64');
    assert.equal(match[2], stored);
  });

  it('salts every verifier', () => {
    assert.notEqual(scramSha256Verifier('x'), scramSha256Verifier('x'));
  });

  it('normalises like SASLprep: ASCII as is, non-ASCII spaces mapped, NFKC', () => {
    assert.equal(saslPrep('p@ss:w0rd\\'), 'p@ss:w0rd\\');
    assert.equal(saslPrep('a\u00a0b'), 'a b');
    assert.equal(saslPrep('a\u00adb'), 'ab');
    assert.equal(saslPrep('\u2168'), 'IX');
  });
});
