import { strict as assert } from 'node:assert';
import { mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FilesControlPlane } from '../../src/controlplane/files.js';
import { eventually, makeTempDir, removeTempDir } from '../../test-kit/env.js';

/** A Secret folder as kubelet projects it: keys are symlinks into `..data`, itself a symlink to a timestamped folder. */
async function projectSecret(objectDir: string, version: string, values: Record<string, string>): Promise<void> {
  const target = join(objectDir, `..${version}`);
  await mkdir(target, { recursive: true });
  for (const [key, value] of Object.entries(values)) await writeFile(join(target, key), value);
  await symlink(`..${version}`, join(objectDir, '..data_tmp'));
  await rename(join(objectDir, '..data_tmp'), join(objectDir, '..data'));
}

describe('files mode: watching the config folder with inotify alone', function () {
  let dir: string;
  let stop: () => void = () => undefined;
  let changes = 0;

  before(async () => {
    dir = await makeTempDir('pgim-watch-');
    await writeFile(join(dir, 'cluster.yaml'), 'kind: Cluster\n');
    const app = join(dir, 'secrets', 'app');
    await mkdir(app, { recursive: true });
    await projectSecret(app, '2026_01', { password: 'one' });
    await symlink('..data/password', join(app, 'password'));
    // The safety poll is out of reach: every change below must come from a folder watch.
    stop = new FilesControlPlane(dir, 3_600_000).watch(() => {
      changes++;
    });
    // The first check records the starting fingerprint and arms the watches.
    await new Promise((resolve) => setTimeout(resolve, 500));
  });

  after(async () => {
    stop();
    await removeTempDir(dir);
  });

  async function expectChange(what: string, act: () => Promise<void>): Promise<void> {
    const before = changes;
    await act();
    await eventually(async () => Promise.resolve(changes > before ? true : undefined), 10_000, what);
  }

  it('sees an edit of cluster.yaml', async () => {
    await expectChange('cluster.yaml edit', () => writeFile(join(dir, 'cluster.yaml'), 'kind: Cluster\nmetadata: {}\n'));
  });

  it('sees a ..data swap, then an edit inside the folder it now points to', async () => {
    const app = join(dir, 'secrets', 'app');
    await expectChange('..data swap', () => projectSecret(app, '2026_02', { password: 'two' }));
    await expectChange('edit after the swap', () => writeFile(join(app, '..2026_02', 'password'), 'three'));
  });

  it('sees a Secret folder created later, and edits inside it', async () => {
    const later = join(dir, 'secrets', 'later');
    await expectChange('new folder', async () => {
      await mkdir(later);
      await writeFile(join(later, 'username'), 'u');
    });
    await expectChange('edit in the new folder', () => writeFile(join(later, 'username'), 'v'));
  });

  it('sees cluster.yaml renamed into place (as pgim switchover writes it)', async () => {
    await expectChange('cluster.yaml renamed into place', async () => {
      await writeFile(join(dir, '.cluster.yaml.tmp'), 'kind: Cluster\nstatus: {targetPrimary: pg-2}\n');
      await rename(join(dir, '.cluster.yaml.tmp'), join(dir, 'cluster.yaml'));
    });
  });

  it('reports one change for a burst of renames that keep the primary (edits, not a switchover)', async () => {
    const before = changes;
    for (let i = 0; i < 5; i++) {
      await writeFile(join(dir, '.cluster.yaml.tmp'), `kind: Cluster\nspec: {instances: ${String(i + 1)}}\nstatus: {targetPrimary: pg-2}\n`);
      await rename(join(dir, '.cluster.yaml.tmp'), join(dir, 'cluster.yaml'));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await eventually(async () => Promise.resolve(changes > before ? true : undefined), 10_000, 'burst of renames');
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(changes, before + 1);
  });

  it('reports one change for a burst of writes', async () => {
    const before = changes;
    for (let i = 0; i < 20; i++) await writeFile(join(dir, 'cluster.yaml'), `kind: Cluster\n# ${String(i)}\n`);
    await eventually(async () => Promise.resolve(changes > before ? true : undefined), 10_000, 'burst');
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(changes, before + 1);
  });
});

describe('files mode: a change between the first load and the watch', () => {
  it('is reported (the first scan compares with what the load saw), and an unchanged folder is not', async () => {
    const dir = await makeTempDir('pgim-watch-gap-');
    try {
      await writeFile(join(dir, 'cluster.yaml'), 'kind: Cluster\n');
      const plane = new FilesControlPlane(dir, 3_600_000);
      // What the daemon does at start: load the desired state, start postgres, then start watching.
      await plane.readCluster().catch(() => undefined);
      let changes = 0;
      let stop = plane.watch(() => {
        changes++;
      });
      await new Promise((resolve) => setTimeout(resolve, 500));
      stop();
      assert.equal(changes, 0, 'nothing changed since the load');
      await plane.readCluster().catch(() => undefined);
      await writeFile(join(dir, 'cluster.yaml'), 'kind: Cluster\nspec: {instances: 2}\n');
      stop = plane.watch(() => {
        changes++;
      });
      await eventually(async () => Promise.resolve(changes > 0 ? true : undefined), 10_000, 'the edit made before the watch');
      stop();
    } finally {
      await removeTempDir(dir);
    }
  });
});
