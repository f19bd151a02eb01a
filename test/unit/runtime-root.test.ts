import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { chmod, mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isRoot, makeTempDir, removeTempDir } from '../../test-kit/env.js';

const run = promisify(execFile);
const moduleUrl = new URL('../../src/fs/runtime-root.js', import.meta.url).href;

/** ensureRuntimeRoot(dir, 0o750) as the unprivileged user nobody (a non-root container's uid): '' or the error. */
async function asNobody(dir: string): Promise<string> {
  const script = `import(${JSON.stringify(moduleUrl)}).then((m) => m.ensureRuntimeRoot(${JSON.stringify(dir)}, 0o750)).then(() => process.stdout.write(''), (e) => process.stdout.write(String(e.message)))`;
  const { stdout } = await run('setpriv', ['--reuid', 'nobody', '--regid', 'nogroup', '--clear-groups', process.execPath, '-e', script]);
  return stdout;
}

describe('fs: the runtime dir root, a mount point pgim may not own (tmpfs from Compose or podman)', function () {
  let base = '';

  before(async function () {
    if (!isRoot) this.skip(); // needs another user's folder; CI runs as root
    base = await makeTempDir('runtime-root');
  });

  after(async () => {
    if (base !== '') await removeTempDir(base);
  });

  const folder = async (name: string, mode: number): Promise<string> => {
    const dir = join(base, name);
    await mkdir(dir);
    await chmod(dir, mode);
    return dir;
  };

  it("uses root's 1777 folder as it is (sticky: nobody else can replace pgim's files), leaving its mode alone", async () => {
    const dir = await folder('sticky', 0o1777);
    assert.equal(await asNobody(dir), '');
    assert.equal((await stat(dir)).mode & 0o7777, 0o1777);
  });

  it('creates a missing folder with the mode asked for', async () => {
    const parent = await folder('parent', 0o1777);
    assert.equal(await asNobody(join(parent, 'controller')), '');
    assert.equal((await stat(join(parent, 'controller'))).mode & 0o7777, 0o750);
  });

  it('refuses a folder every user may write without the sticky bit, naming the fix', async () => {
    const message = await asNobody(await folder('open', 0o777));
    assert.match(message, /is writable by every user without the sticky bit/);
    assert.match(message, /mount it owned by uid \d+ \(Docker: tmpfs uid=\d+; podman: U\) or with mode 1777/);
  });

  it('refuses a folder it cannot write', async () => {
    assert.match(await asNobody(await folder('closed', 0o755)), /is not writable by uid \d+/);
  });
});
