// The dependency direction of src/ (part of `npm run lint`): each folder is one concern and sits in one layer; a
// module may import its own folder and any LOWER layer, never its own layer's other folders nor a higher one. A
// folder missing from the list, an import that climbs, and any import cycle between folders fail the check.
// Type-only and dynamic imports count too: a cycle in types is still a cycle in the design.
//
// Plain JavaScript so that lint needs no build first.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Lowest first. Keep README's Layout section in step. */
export const layers = [
  ['errors', 'async', 'fs'], // no project imports: error types, sleep/backoff/coalescing, atomic and confined files
  ['process'], // the native addon, children, reaper, privileges
  ['log', 'options', 'instance'], // logger; CLI options and the runtime layout; the observed state the readers share
  ['cluster'], // the Cluster manifest: schema, observability fields, CNPG defaults
  ['render', 'controlplane'], // pure renderers; where the desired state comes from (files, Kubernetes)
  ['credentials', 'tls'], // Secrets -> passwords; certificates
  ['postgres'], // how: initdb, basebackup, rewind, the postmaster, SQL, status queries, probes
  ['replication'], // topology, conninfo, the primary's timeline
  ['backup'], // spec.backup: wal-archive, base backups, retention, Backup objects (Barman Cloud as children)
  ['desired'], // the desired state: read, validated, rendered, published once per change
  ['supervisor', 'metrics', 'webserver'], // when postgres runs; :9187; :8000
  ['role', 'rollout', 'managed'], // managed roles and the pooler's role (spec.managed, Poolers); promote, demote, rewind, rejoin, the primary Lease, HA slots; restarts for pending settings
  ['reconcile'], // the loop that applies a changed desired state
  ['daemon'], // wires the pieces for run / init / join / render
];

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
const layerOf = new Map(layers.flatMap((folders, level) => folders.map((folder) => [folder, level])));

function* tsFiles(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* tsFiles(path);
    else if (entry.name.endsWith('.ts')) yield path;
  }
}

/** `from '...'` (import, import type, export ... from) and `import('...')`, relative specifiers only. */
const specifierPattern = /(?:\bfrom\s*|\bimport\s*\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g;
const folderOf = (file) => relative(src, file).split(sep)[0];

const problems = [];
/** folder -> folder -> one example "file -> specifier" */
const edges = new Map();
for (const folder of readdirSync(src, { withFileTypes: true })) {
  if (folder.isDirectory() && !layerOf.has(folder.name)) problems.push(`src/${folder.name}/ is in no layer: add it to scripts/check-layers.mjs`);
}
for (const file of tsFiles(src)) {
  const from = folderOf(file);
  const text = readFileSync(file, 'utf8');
  for (const match of text.matchAll(specifierPattern)) {
    const target = resolve(dirname(file), match[1]);
    if (!target.startsWith(src + sep)) {
      problems.push(`${relative(root, file)} imports ${match[1]}, outside src/`);
      continue;
    }
    const to = folderOf(target);
    if (to === from) continue;
    if (!edges.has(from)) edges.set(from, new Map());
    edges.get(from).set(to, `${relative(root, file)} -> ${match[1]}`);
    const [a, b] = [layerOf.get(from), layerOf.get(to)];
    if (a === undefined || b === undefined) continue;
    if (b > a) problems.push(`${relative(root, file)} imports ${match[1]}: ${from}/ must not import the higher ${to}/`);
    else if (b === a) problems.push(`${relative(root, file)} imports ${match[1]}: ${from}/ and ${to}/ share a layer; neither imports the other`);
  }
}

// Cycles between folders (the layer rule forbids them; this names them outright, should the layers ever allow one).
const state = new Map();
const stack = [];
function visit(folder) {
  state.set(folder, 'open');
  stack.push(folder);
  for (const next of edges.get(folder)?.keys() ?? []) {
    if (state.get(next) === 'open') {
      const cycle = [...stack.slice(stack.indexOf(next)), next];
      problems.push(`import cycle between folders: ${cycle.join(' -> ')} (${cycle.slice(0, -1).map((f, i) => edges.get(f).get(cycle[i + 1])).join('; ')})`);
    } else if (!state.has(next)) visit(next);
  }
  stack.pop();
  state.set(folder, 'done');
}
for (const folder of edges.keys()) if (!state.has(folder)) visit(folder);

// test/ and bench/ share test-kit/; neither imports the other.
for (const [dir, other] of [
  ['test', 'bench'],
  ['bench', 'test'],
]) {
  for (const file of tsFiles(join(root, dir))) {
    for (const match of readFileSync(file, 'utf8').matchAll(specifierPattern)) {
      const target = resolve(dirname(file), match[1]);
      if (target.startsWith(join(root, other) + sep)) problems.push(`${relative(root, file)} imports ${match[1]}: ${dir}/ must not import ${other}/ (share it through test-kit/)`);
    }
  }
}

if (problems.length > 0) {
  for (const problem of problems) console.error(`check-layers: ${problem}`);
  process.exitCode = 1;
} else {
  console.log(`check-layers: ${layers.length} layers, ${[...edges.values()].reduce((n, m) => n + m.size, 0)} folder imports, all downward`);
}
