// Bundles tsc's output for the CLI (dist/cmd/pgim.js and the dist/src modules it imports, with their npm
// dependencies) into dist/cmd/pgim.js plus a few chunks in dist/cmd/chunks/.
//
// Why: pgim is PID 1, and every start of a container waits for it. Loaded file by file, its ~520 modules cost
// ~150 ms of resolution and compilation before postgres can be spawned; bundled, ~70 ms. The modules pgim loads
// only later (status server, metrics, Kubernetes client, certificate generation) stay in their own chunks, loaded
// on demand as before. Identifiers are kept, so stack traces stay readable; the .map files lead back to dist/src.
//
// Run after tsc (npm run build). Running tsc alone leaves a working, unbundled dist/cmd/pgim.js.
import { build, type Plugin } from 'esbuild';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

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

await rm(join(outdir, 'chunks'), { recursive: true, force: true });
await build({
  entryPoints: [join(outdir, 'pgim.js')],
  outdir,
  allowOverwrite: true,
  bundle: true,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  format: 'esm',
  platform: 'node',
  target: 'node20.19',
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  // Only Kubernetes mode needs the client; it stays a normal package import, resolved from node_modules.
  external: ['@kubernetes/client-node'],
  // The CommonJS packages inside call require(); an ES module has none of its own.
  banner: { js: "import { createRequire as pgimCreateRequire } from 'node:module'; const require = pgimCreateRequire(import.meta.url);" },
  plugins: [zodEnglishOnly],
  logLevel: 'warning',
});
