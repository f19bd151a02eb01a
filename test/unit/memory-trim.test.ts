import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { nativeCalls } from '../../src/process/native.js';

function residentBytes(): number {
  const kB = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  assert.ok(kB !== undefined, 'VmRSS in /proc/self/status');
  return Number(kB) * 1024;
}

describe('trimMemory (malloc_trim through the native addon)', () => {
  it('hands freed malloc pages back to the kernel, which free() alone keeps', () => {
    const calls = nativeCalls();
    if (calls instanceof Error) throw calls;
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;

    // 8 KiB buffers come from glibc's arenas (below the mmap threshold). Keeping every 64th one pins the arena
    // around the freed runs, so free() cannot shrink it from the top: the freed pages stay resident.
    const MiB = 1024 * 1024;
    const buffers: (Buffer | undefined)[] = [];
    for (let i = 0; i < (96 * MiB) / 8192; i++) buffers.push(Buffer.alloc(8192, 1));
    for (let i = 0; i < buffers.length; i++) if (i % 64 !== 0) buffers[i] = undefined;
    gc();
    gc();
    const before = residentBytes();
    assert.equal(calls.trimMemory(), true, 'malloc_trim released memory');
    const after = residentBytes();
    assert.ok(before - after > 48 * MiB, `RSS fell by ${((before - after) / MiB).toFixed(1)} MiB (from ${(before / MiB).toFixed(0)} MiB)`);
    assert.ok(buffers.filter((b) => b !== undefined).every((b) => b.every((byte) => byte === 1)), 'live buffers untouched');
  });
});
