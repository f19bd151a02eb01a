import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const heapModule = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'process', 'heap.js');

/**
 * The young generation's size (MB) in a fresh Node after an allocation-heavy stretch whose objects survive
 * scavenges (as a metrics collection's rows and samples do), with or without src/process/heap.ts loaded first.
 */
function youngGenerationAfterLoad(loadHeapModule: boolean): number {
  const script = `
    import { getHeapSpaceStatistics } from 'node:v8';
    ${loadHeapModule ? `await import(${JSON.stringify(heapModule)});` : ''}
    let keep = [];
    for (let i = 0; i < 4_000_000; i++) { keep.push({ i, text: 'row ' + i }); if (keep.length > 100_000) keep = []; }
    const space = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
    process.stdout.write(String(space.space_size / 1024 / 1024));`;
  return Number(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }));
}

describe("V8's young generation (src/process/heap.ts, loaded second by cmd/pgim.ts)", () => {
  it('stays at its initial size under surviving allocations, which otherwise grow it many times over', () => {
    const kept = youngGenerationAfterLoad(true);
    const grown = youngGenerationAfterLoad(false);
    assert.ok(kept <= 4, `young generation ${kept} MB with the module loaded`);
    assert.ok(grown >= 4 * kept, `young generation ${grown} MB without it (control: the load does grow it)`);
  });
});
