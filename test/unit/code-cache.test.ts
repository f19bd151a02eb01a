import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { codeCachePath, loadBundle, writeCodeCache } from '../../src/process/code-cache.js';
import { makeTempDir, removeTempDir } from '../../test-kit/env.js';
import { pgimEntry, pgimLaunch } from '../../test-kit/pgim.js';

/** A CommonJS bundle as scripts/bundle.ts writes them: module bodies that run once, and exports. */
const bundleText = (answer: number): string =>
  `"use strict"; let evaluated = 0; evaluated++; const { join } = require('node:path');\n` +
  `module.exports = { answer: () => ${answer}, evaluated: () => evaluated, dir: () => join(__dirname, '.'), file: __filename };\n`;

const loader = pathToFileURL(join(pgimEntry, '..', '..', 'src', 'process', 'code-cache.js')).href;

/**
 * Loads a bundle in a new node (as each command runs): V8 keeps what one process compiled, so a second load in the
 * same process would never read the cache at all.
 */
function loadInChild(bundle: string): { cacheUsed: boolean; answer?: number; evaluated?: number } {
  const script =
    `import { loadBundle } from ${JSON.stringify(loader)}; const { exports, cacheUsed } = loadBundle(${JSON.stringify(bundle)});` +
    ` process.stdout.write(JSON.stringify({ cacheUsed, answer: exports.answer?.(), evaluated: exports.evaluated?.() }));`;
  return JSON.parse(execFileSync(process.execPath, [...pgimLaunch.nodeArgs, '--input-type=module', '-e', script], { encoding: 'utf8' })) as ReturnType<typeof loadInChild>;
}

describe('V8 code cache for the command bundles (src/process/code-cache.ts)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await makeTempDir('code-cache');
  });
  afterEach(async () => {
    await removeTempDir(dir);
  });

  it('runs a bundle without a cache, and with the cache it wrote: same exports, module bodies run once', async () => {
    const bundle = join(dir, 'cmd.cjs');
    await writeFile(bundle, bundleText(42));
    const inProcess = loadBundle<{ answer(): number; dir(): string; file: string }>(bundle);
    assert.equal(inProcess.exports.dir(), dir);
    assert.equal(inProcess.exports.file, bundle);
    assert.deepEqual(loadInChild(bundle), { cacheUsed: false, answer: 42, evaluated: 1 });
    const cache = writeCodeCache(bundle);
    assert.equal(cache, codeCachePath(bundle, bundleText(42)));
    assert.match(cache, /cmd\.[0-9a-f]{16}\.v8cache$/);
    assert.deepEqual(loadInChild(bundle), { cacheUsed: true, answer: 42, evaluated: 1 });
  });

  it('never uses a stale cache: new text of the same length runs as written (V8 itself checks only the length)', async () => {
    const bundle = join(dir, 'cmd.cjs');
    await writeFile(bundle, bundleText(42));
    const oldCache = writeCodeCache(bundle);
    await writeFile(bundle, bundleText(43));
    assert.equal(bundleText(42).length, bundleText(43).length);
    assert.notEqual(codeCachePath(bundle, bundleText(43)), oldCache);
    assert.deepEqual(loadInChild(bundle), { cacheUsed: false, answer: 43, evaluated: 1 });
  });

  it('compiles without the cache when V8 rejects it (corrupt, or made by another Node version)', async () => {
    const bundle = join(dir, 'cmd.cjs');
    await writeFile(bundle, bundleText(7));
    const cache = writeCodeCache(bundle);
    const bytes = await readFile(cache);
    bytes.fill(0x5a, 0, 64);
    await writeFile(cache, bytes);
    assert.deepEqual(loadInChild(bundle), { cacheUsed: false, answer: 7, evaluated: 1 });
  });

  it('the build ships a cache for each command bundle that V8 accepts under the flags pgim runs with', async function () {
    const commandsDir = join(pgimEntry, '..', 'commands');
    const files = await readdir(commandsDir).catch(() => [] as string[]);
    // tsc alone (no scripts/bundle.ts) leaves no command bundles: nothing to check then.
    if (!files.some((f) => f.endsWith('.cjs'))) this.skip();
    const commands = files.filter((f) => f.endsWith('.v8cache')).map((f) => f.slice(0, f.indexOf('.')));
    assert.deepEqual(commands.sort(), ['backup', 'backup-request', 'status', 'switchover', 'wal-archive', 'wal-restore']);
    for (const command of commands) {
      assert.equal(loadInChild(join(commandsDir, `${command}.cjs`)).cacheUsed, true, `${command}: V8 rejected the shipped code cache`);
    }
  });

  it('wal-archive and wal-restore (run once per WAL file) hold neither pino nor the S3 client, which is its own file', async function () {
    const commandsDir = join(pgimEntry, '..', 'commands');
    const files = await readdir(commandsDir).catch(() => [] as string[]);
    if (!files.includes('wal-archive.cjs')) this.skip();
    for (const command of ['wal-archive', 'wal-restore']) {
      const sources = (JSON.parse(await readFile(join(commandsDir, `${command}.cjs.map`), 'utf8')) as { sources: string[] }).sources;
      assert.deepEqual(sources.filter((source) => /node_modules\/(pino|@aws-sdk)\//.test(source)), [], command);
      assert.match(await readFile(join(commandsDir, `${command}.cjs`), 'utf8'), /require\("\.\/aws-sdk-client-s3\.cjs"\)/, command);
    }
  });
});
