import { strict as assert } from 'node:assert';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRoot } from './paths.js';

/**
 * Dockle's INFO-level checks (v0.4.15, pkg/types/checkpoint.go: DefaultLevelMap). Only these may be accepted in
 * .dockleignore: a FATAL or WARN finding is fixed in the image, never waved through.
 */
const dockleInfoChecks = new Set(['CIS-DI-0005', 'CIS-DI-0006', 'CIS-DI-0008', 'DKL-LI-0003']);

describe('static: the Dockle gate (scripts/image.sh, .dockleignore)', function () {
  it('.dockleignore accepts only INFO-level checks, and docs/security.md explains each one', async () => {
    const accepted = (await readFile(join(repoRoot, '.dockleignore'), 'utf8'))
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    const security = await readFile(join(repoRoot, 'docs', 'security.md'), 'utf8');
    const section = security.slice(security.indexOf('### The image, built and scanned'));
    assert.ok(section.length < security.length, 'docs/security.md has a section "The image, built and scanned"');
    for (const code of accepted) {
      assert.ok(dockleInfoChecks.has(code), `${code} is not an INFO-level Dockle check: fix the image instead`);
      const row = section.split('\n').find((l) => l.startsWith(`| \`${code}\` `));
      assert.ok(row?.includes('| accepted: '), `docs/security.md explains why ${code} is accepted`);
    }
  });

  it('scripts/image.sh fails on any Dockle finding: exit code 1 from the INFO level up, the exact Dockle version', async () => {
    const script = await readFile(join(repoRoot, 'scripts', 'image.sh'), 'utf8');
    assert.match(script, /--exit-code 1 --exit-level info\b/);
    assert.doesNotMatch(script, /--accept-key|--ignore\b|-i [A-Z]{3}-/, 'no check is switched off on the command line: .dockleignore is the one place');
    assert.match(script, /^dockle_version=v0\.4\.15$/m);
    const goMod = await readFile(join(repoRoot, 'scripts', 'image', 'dockle', 'go.mod'), 'utf8');
    assert.match(goMod, /^require github\.com\/goodwithtech\/dockle v0\.4\.15$/m, 'the wrapper module pins the same version');
  });
});
