import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Script } from 'node:vm';

/**
 * A short-lived command's own CommonJS bundle (scripts/bundle.ts: dist/cmd/commands/<name>.cjs) run with V8's code
 * cache. Node 20 has no compile cache for ES modules (`module.enableCompileCache` came with Node 22), but a
 * `vm.Script` accepts V8's serialized bytecode: with it, a command skips parsing and compiling its modules (yaml, zod,
 * pg: most of `pgim switchover`'s start before it reads cluster.yaml).
 *
 * The cache is made at build time and named by the SHA-256 of the bundle's text: V8 checks only the source's length
 * (and its own version and flags), so a cache for other text of the same length must never be found. A missing,
 * stale or rejected cache (another Node version, other V8 flags) only means compiling as without it.
 */

/** `<bundle>.<first 16 hex digits of the SHA-256 of its text>.v8cache`, next to the bundle. */
export function codeCachePath(bundle: string, source: string): string {
  return `${bundle.replace(/\.cjs$/, '')}.${createHash('sha256').update(source).digest('hex').slice(0, 16)}.v8cache`;
}

/** The bundle wrapped as Node wraps a CommonJS module, compiled with `cachedData` when given. */
function compile(bundle: string, source: string, cachedData?: Buffer): Script {
  return new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: bundle,
    ...(cachedData === undefined ? {} : { cachedData }),
  });
}

/** Runs the compiled wrapper: the bundle's module bodies, once; returns its exports. */
function evaluate(script: Script, bundle: string): unknown {
  const module = { exports: {} as unknown };
  const wrapper = script.runInThisContext() as (exports: unknown, require: NodeJS.Require, module: unknown, filename: string, dirname: string) => void;
  wrapper(module.exports, createRequire(bundle), module, bundle, dirname(bundle));
  return module.exports;
}

export interface LoadedBundle<T> {
  readonly exports: T;
  /** Whether V8 took the cache (false: none found, or rejected). */
  readonly cacheUsed: boolean;
}

/** Loads a command bundle, with its code cache when there is a valid one. */
export function loadBundle<T>(bundle: string): LoadedBundle<T> {
  const source = readFileSync(bundle, 'utf8');
  let cachedData: Buffer | undefined;
  try {
    cachedData = readFileSync(codeCachePath(bundle, source));
  } catch {
    cachedData = undefined;
  }
  const script = compile(bundle, source, cachedData);
  return { exports: evaluate(script, bundle) as T, cacheUsed: cachedData !== undefined && script.cachedDataRejected !== true };
}

/**
 * Build time: compiles the bundle, runs its module bodies (the functions they call are then compiled too, the most of
 * a command's start) and writes the cache next to it (temp file + rename). Run it with the node and the V8 flags pgim
 * runs with: V8 rejects a cache made under other flags. Returns the cache's path.
 */
export function writeCodeCache(bundle: string): string {
  const source = readFileSync(bundle, 'utf8');
  const script = compile(bundle, source);
  evaluate(script, bundle);
  const path = codeCachePath(bundle, source);
  const temp = `${path}.${randomBytes(4).toString('hex')}`;
  try {
    writeFileSync(temp, script.createCachedData(), { mode: 0o644 });
    renameSync(temp, path);
  } finally {
    rmSync(temp, { force: true });
  }
  return path;
}
