import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { removeStaleTempFiles, writeFileAtomic } from '../../src/fs/atomic.js';
import { isValidObjectKey, readConfined, readRegularFile } from '../../src/fs/confined.js';
import { isRoot, makeTempDir, removeTempDir } from '../../test-kit/env.js';

describe('atomic writes and confined reads', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await makeTempDir('fs');
  });
  afterEach(async () => {
    await removeTempDir(dir);
  });

  it('writes with the requested mode and leaves no temp file', async () => {
    const path = join(dir, 'f.conf');
    assert.deepEqual(await writeFileAtomic(path, 'one\n', 0o600), { changed: true });
    assert.equal(await readFile(path, 'utf8'), 'one\n');
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir), ['f.conf']);
  });

  it('does not rewrite unchanged bytes', async () => {
    const path = join(dir, 'f.conf');
    await writeFileAtomic(path, 'same', 0o600);
    const before = (await stat(path)).ino;
    assert.deepEqual(await writeFileAtomic(path, 'same', 0o600), { changed: false });
    assert.equal((await stat(path)).ino, before);
  });

  it('keeps the original and no temp file when the disk is full (64 KiB tmpfs)', async function () {
    if (!isRoot) this.skip(); // mounting a tmpfs needs root; CI runs as root
    const mnt = join(dir, 'small');
    await mkdir(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]);
    try {
      const path = join(mnt, 'custom.conf');
      await writeFile(path, 'ORIGINAL\n');
      await assert.rejects(writeFileAtomic(path, Buffer.alloc(256 * 1024, 'x'), 0o600), /ENOSPC/);
      assert.equal(await readFile(path, 'utf8'), 'ORIGINAL\n');
      assert.deepEqual(await readdir(mnt), ['custom.conf']);
    } finally {
      execFileSync('umount', [mnt]);
    }
  });

  it('reads through a Kubernetes-style ..data symlink but not out of the folder', async () => {
    const secret = join(dir, 'secret');
    await mkdir(join(secret, '..2026_11_27'), { recursive: true });
    await writeFile(join(secret, '..2026_11_27', 'password'), 'pw');
    await symlink('..2026_11_27', join(secret, '..data'));
    await symlink('..data/password', join(secret, 'password'));
    assert.equal((await readConfined(secret, 'password', 100)).toString(), 'pw');
    await writeFile(join(dir, 'outside'), 'x');
    await symlink('../outside', join(secret, 'escape'));
    await assert.rejects(readConfined(secret, 'escape', 100), /resolves outside its folder/);
    await assert.rejects(readConfined(secret, 'absent', 100), /does not exist/);
  });

  it('removes temp files a crash left between write and rename, and nothing else (c7 row 61)', async () => {
    await writeFile(join(dir, 'custom.conf'), 'kept');
    await writeFile(join(dir, '.custom.conf.0a1b2c3d4e5f.tmp'), 'half-written');
    await writeFile(join(dir, '.hidden'), 'not ours');
    assert.deepEqual(await removeStaleTempFiles(dir), ['.custom.conf.0a1b2c3d4e5f.tmp']);
    assert.deepEqual((await readdir(dir)).sort(), ['.hidden', 'custom.conf']);
  });

  it('caps the size it reads', async () => {
    await writeFile(join(dir, 'big'), Buffer.alloc(2048));
    await assert.rejects(readConfined(dir, 'big', 1024), /larger than 1024 bytes/);
  });

  it('keeps only the bytes it read alive, not a buffer of the cap', async () => {
    await writeFile(join(dir, 'ca.crt'), 'x'.repeat(1500));
    const bytes = await readRegularFile(join(dir, 'ca.crt'), 1024 * 1024);
    assert.equal(bytes.toString(), 'x'.repeat(1500));
    // A subarray of a 1 MiB buffer would keep the whole MiB alive (the Kubernetes client's CA, held per watch).
    assert.ok(bytes.buffer.byteLength <= 1501, `backing store of ${bytes.buffer.byteLength} bytes`);
    assert.equal((await readRegularFile(join(dir, 'ca.crt'), 1500)).length, 1500);
    await writeFile(join(dir, 'empty'), '');
    assert.equal((await readRegularFile(join(dir, 'empty'), 100)).length, 0);
  });

  it('reads a file past the size its handle reported, up to the cap', async () => {
    // /proc files report size 0 and have content: the same as a file that grew between fstat and read.
    const expected = await readFile('/proc/self/cmdline');
    assert.deepEqual(await readRegularFile('/proc/self/cmdline', 1024 * 1024), expected);
    await assert.rejects(readRegularFile('/proc/self/cmdline', expected.length - 1), /larger than/);
  });

  it('accepts only Kubernetes-valid keys', () => {
    for (const key of ['password', 'tls.crt', 'ca-bundle_1']) assert.ok(isValidObjectKey(key), key);
    for (const key of ['..data', '.', '..', '../x', '/abs', 'a/b', '', 'a\u0000b', 'x'.repeat(254)]) assert.ok(!isValidObjectKey(key), key);
  });
});
