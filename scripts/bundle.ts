// Bundles tsc's output for the CLI (dist/cmd/pgim.js and the dist/src modules it imports, with their npm
// dependencies) into dist/cmd/pgim.js plus a few chunks in dist/cmd/chunks/.
//
// Why: pgim is PID 1, and every start of a container waits for it. Loaded file by file, its ~520 modules cost
// ~150 ms of resolution and compilation before postgres can be spawned; bundled, ~70 ms. The modules pgim loads
// only later (status server, metrics, Kubernetes client, certificate generation) stay in their own chunks, loaded
// on demand as before. Identifiers are kept, so stack traces stay readable; the .map files lead back to dist/src.
// The short-lived commands (switchover, wal-archive, ...) get their own CommonJS bundles in dist/cmd/commands/, each
// with a V8 code cache made here (see below).
//
// Run after tsc (npm run build). Running tsc alone leaves a working, unbundled dist/cmd/pgim.js.
import { build, type BuildOptions, type Plugin } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const outdir = join(root, 'dist', 'cmd');

// zod's classic API imports all of its ~60 locale modules (340 KB of source, held in memory for pgim's whole
// life); pgim's validation errors are English, so only `en` is bundled. If zod moves the file, the filter stops
// matching and every locale is bundled again: larger, never broken.
const zodEnglishOnly: Plugin = {
  name: 'zod-english-only',
  setup(bundle) {
    bundle.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      args.importer.includes(join('node_modules', 'zod')) ? { path: join(dirname(args.importer), '..', 'locales', 'en.js'), namespace: 'zod-locales' } : undefined,
    );
    bundle.onLoad({ filter: /.*/, namespace: 'zod-locales' }, (args) => ({
      contents: `export { default as en } from ${JSON.stringify(args.path)};`,
      resolveDir: dirname(args.path),
    }));
  },
};

// node-postgres asks, when it loads, whether it runs in a Cloudflare Worker by constructing a fetch Response. On
// Node 20 (no navigator) that loads Node's whole fetch implementation (undici, with its WebAssembly HTTP parser):
// +12 MB RSS and +3 MB heap in a bare node, for a question whose answer is always no here. pgim never uses fetch.
// If node-postgres rewrites the probe, the build stops here so the saving is not lost unnoticed.
const cloudflareProbe = "typeof Response === 'function'";
const pgWithoutCloudflareProbe: Plugin = {
  name: 'pg-without-cloudflare-probe',
  setup(bundle) {
    bundle.onLoad({ filter: /[\\/]node_modules[\\/]pg[\\/]lib[\\/]stream\.js$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      if (!source.includes(cloudflareProbe)) throw new Error(`${args.path}: the Cloudflare probe (${cloudflareProbe}) is gone; review scripts/bundle.ts`);
      return { contents: source.replace(cloudflareProbe, 'false'), loader: 'js' };
    });
  },
};

const banner = "import { createRequire as pgimCreateRequire } from 'node:module'; const require = pgimCreateRequire(import.meta.url);";
if ((await readFile(join(outdir, 'pgim.js'), 'utf8')).includes(banner)) {
  // Bundling the bundle would lose the chunks it imports: tsc's output is the input.
  throw new Error('dist/cmd/pgim.js is already the bundle; run tsc first (npm run build does both)');
}
await rm(join(outdir, 'chunks'), { recursive: true, force: true });
await rm(join(outdir, 'commands'), { recursive: true, force: true });
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20.19',
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  // Only Kubernetes mode needs the client; it stays a normal package import, resolved from node_modules.
  external: ['@kubernetes/client-node'],
  plugins: [zodEnglishOnly, pgWithoutCloudflareProbe],
  logLevel: 'warning',
} satisfies BuildOptions;
await build({
  ...common,
  entryPoints: [join(outdir, 'pgim.js')],
  outdir,
  allowOverwrite: true,
  bundle: true,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  format: 'esm',
  // The CommonJS packages inside call require(); an ES module has none of its own.
  banner: { js: banner },
  // cmd/pgim.ts runs the commands below from their own bundles; their tsc modules are not bundled here.
  define: { PGIM_COMMAND_BUNDLES: 'true' },
});

// The short-lived commands, each one CommonJS file with only what it needs, run by cmd/pgim.ts with V8's code cache
// (src/process/code-cache.ts): `switchover` skips compiling yaml, zod and pg (~35 ms of CPU). Keep the names in step
// with commandBundle() in cmd/pgim.ts.
const commands = {
  switchover: 'src/replication/switchover.js',
  'wal-archive': 'src/backup/wal-archive.js',
  'wal-restore': 'src/backup/wal-restore.js',
  status: 'src/webserver/client.js',
  backup: 'src/backup/cli.js',
  'backup-request': 'src/backup/backup-request.js',
};
// The S3 client (1 MB) that `wal-archive` and `wal-restore` load only without a daemon to ask: its own file, required
// on demand, so the common path (one question to the daemon per WAL file) reads and hashes ~10 KB, not 1 MB.
const onDemandFiles: Plugin = {
  name: 'command-on-demand-files',
  setup(bundle) {
    bundle.onResolve({ filter: /^@aws-sdk\/client-s3$/ }, (args) => (args.kind === 'dynamic-import' ? { path: './aws-sdk-client-s3.cjs', external: true } : undefined));
  },
};
const commandsDir = join(outdir, 'commands');
await build({
  ...common,
  entryPoints: { ...Object.fromEntries(Object.entries(commands).map(([name, path]) => [name, join(root, 'dist', path)])), 'aws-sdk-client-s3': '@aws-sdk/client-s3' },
  outdir: commandsDir,
  outExtension: { '.js': '.cjs' },
  format: 'cjs',
  // A vm.Script has no module loader of its own: every import() becomes a require().
  supported: { 'dynamic-import': false },
  define: { 'import.meta.url': 'pgimImportMetaUrl' },
  banner: { js: "var pgimImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
  plugins: [...common.plugins, onDemandFiles],
});
// Each cache is made by the node that will run it, with pgim's own V8 flags (the entry's shebang): V8 rejects a
// cache made under other flags.
const shebang = (await readFile(join(outdir, 'pgim.js'), 'utf8')).split('\n', 1)[0] ?? '';
const nodeFlags = shebang.split(' ').filter((word) => word.startsWith('--'));
const codeCache = pathToFileURL(join(root, 'dist', 'src', 'process', 'code-cache.js')).href;
for (const name of Object.keys(commands)) {
  const script = `import { writeCodeCache } from ${JSON.stringify(codeCache)}; writeCodeCache(${JSON.stringify(join(commandsDir, `${name}.cjs`))});`;
  execFileSync(process.execPath, [...nodeFlags, '--input-type=module', '-e', script], { stdio: 'inherit' });
}
