import { strict as assert } from 'node:assert';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRoot } from './paths.js';

interface LockEntry {
  version?: string;
  resolved?: string;
  integrity?: string;
  link?: boolean;
  hasInstallScript?: boolean;
  dev?: boolean;
}

interface Lockfile {
  lockfileVersion?: number;
  packages?: Record<string, LockEntry>;
}

/** `node_modules/a/node_modules/@b/c` -> `@b/c`. */
const packageName = (path: string): string => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);

const exists = (path: string): Promise<boolean> => access(path).then(() => true, () => false);

describe('static: npm supply chain (package-lock.json, offline)', function () {
  let entries: [string, LockEntry][] = [];

  before(async () => {
    const lock = JSON.parse(await readFile(join(repoRoot, 'package-lock.json'), 'utf8')) as Lockfile;
    assert.equal(lock.lockfileVersion, 3, 'lockfile v3 (npm >= 9)');
    entries = Object.entries(lock.packages ?? {}).filter(([path, e]) => path !== '' && e.link !== true);
    assert.ok(entries.length > 0);
  });

  it('every package has a sha512 integrity hash and comes from https://registry.npmjs.org (or the configured registry)', () => {
    const problems: string[] = [];
    for (const [path, e] of entries) {
      if (!e.integrity?.startsWith('sha512-')) problems.push(`${path}: integrity ${e.integrity ?? '(none)'}`);
      // Without "resolved" (npm's omit-lockfile-registry-resolved), npm ci fetches from the configured registry and
      // still checks the integrity above; a resolved URL must be the public registry over https.
      if (e.resolved !== undefined && !e.resolved.startsWith('https://registry.npmjs.org/')) problems.push(`${path}: resolved ${e.resolved}`);
      if (e.version === undefined || !/^\d+\.\d+\.\d+/.test(e.version)) problems.push(`${path}: version ${e.version ?? '(none)'} is not a registry version (git, file or URL dependency)`);
    }
    assert.deepEqual(problems, []);
  });

  it('packages with install scripts are exactly those in scripts/install-scripts.allow', async () => {
    const allowed = (await readFile(join(repoRoot, 'scripts', 'install-scripts.allow'), 'utf8'))
      .split('\n')
      .map((l) => l.replace(/#.*$/, '').trim())
      .filter((l) => l !== '');
    const withScripts = [...new Set(entries.filter(([, e]) => e.hasInstallScript === true).map(([path]) => packageName(path)))].sort();
    const unexpected = withScripts.filter((name) => !allowed.includes(name));
    const stale = allowed.filter((name) => !withScripts.includes(name));
    assert.deepEqual(unexpected, [], `new packages with install scripts (read the script, then allow-list it with a reason): ${unexpected.join(', ')}`);
    assert.deepEqual(stale, [], `allow-listed packages that no longer have install scripts (remove the line): ${stale.join(', ')}`);
  });

  it('the lockfile does not hide an install script: every installed package with one is marked hasInstallScript', async () => {
    const hidden: string[] = [];
    let checked = 0;
    for (const [path, e] of entries) {
      const manifest = join(repoRoot, path, 'package.json');
      if (!(await exists(manifest))) continue; // optional or platform-specific, not installed here
      checked++;
      const pkg = JSON.parse(await readFile(manifest, 'utf8')) as { scripts?: Record<string, unknown> };
      const scripts = ['preinstall', 'install', 'postinstall'].filter((s) => pkg.scripts?.[s] !== undefined);
      // npm runs `node-gyp rebuild` for a package that ships binding.gyp and declares no install script.
      if (scripts.length === 0 && (await exists(join(repoRoot, path, 'binding.gyp')))) scripts.push('binding.gyp');
      if (scripts.length > 0 && e.hasInstallScript !== true) hidden.push(`${path} (${scripts.join(', ')})`);
    }
    assert.ok(checked > 0, 'node_modules is installed (scripts/install-deps.sh)');
    assert.deepEqual(hidden, []);
  });
});
