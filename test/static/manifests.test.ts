import { strict as assert } from 'node:assert';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from './paths.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const objects = (v: unknown): Obj[] => (Array.isArray(v) ? v.filter(isObj) : []);

interface PodTemplate {
  where: string;
  spec: Obj;
}

async function yamlFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await yamlFiles(path)));
    else if (/\.ya?ml$/.test(entry.name)) out.push(path);
  }
  return out.sort();
}

/** The pod spec of every workload kind that has one. */
function podSpecOf(doc: Obj): Obj | undefined {
  const spec = doc.spec;
  if (!isObj(spec)) return undefined;
  switch (doc.kind) {
    case 'Pod':
      return spec;
    case 'PodTemplate':
      return isObj(doc.template) && isObj(doc.template.spec) ? doc.template.spec : undefined;
    case 'Deployment':
    case 'StatefulSet':
    case 'DaemonSet':
    case 'ReplicaSet':
    case 'ReplicationController':
    case 'Job':
      return isObj(spec.template) && isObj(spec.template.spec) ? spec.template.spec : undefined;
    case 'CronJob': {
      const job = spec.jobTemplate;
      return isObj(job) && isObj(job.spec) && isObj(job.spec.template) && isObj(job.spec.template.spec) ? job.spec.template.spec : undefined;
    }
    default:
      return undefined;
  }
}

const containersOf = (spec: Obj): Obj[] => [...objects(spec.initContainers), ...objects(spec.containers), ...objects(spec.ephemeralContainers)];

/** Containers (init and ephemeral included) whose root filesystem is not read-only. */
function writableRoots(templates: PodTemplate[]): string[] {
  const missing: string[] = [];
  for (const { where, spec } of templates) {
    for (const c of containersOf(spec)) {
      const ctx = c.securityContext;
      if (!(isObj(ctx) && ctx.readOnlyRootFilesystem === true)) missing.push(`${where} container ${String(c.name)}`);
    }
  }
  return missing;
}

describe('static: Kubernetes manifests under deploy/', function () {
  const templates: PodTemplate[] = [];
  let files: string[] = [];

  before(async () => {
    files = await yamlFiles(join(repoRoot, 'deploy'));
    for (const file of files) {
      const docs = parseAllDocuments(await readFile(file, 'utf8'));
      for (const [n, doc] of docs.entries()) {
        assert.deepEqual(doc.errors.map((e) => e.message), [], `${relative(repoRoot, file)} document ${String(n + 1)} parses`);
        const value: unknown = doc.toJS();
        if (!isObj(value)) continue;
        const spec = podSpecOf(value);
        const name = isObj(value.metadata) ? String(value.metadata.name) : '?';
        if (spec) templates.push({ where: `${relative(repoRoot, file)} ${String(value.kind)}/${name}`, spec });
      }
    }
  });

  it('has pod templates to check (the check is not vacuous)', () => {
    assert.ok(files.length > 0, 'no YAML under deploy/');
    assert.ok(templates.length > 0, 'no Pod or workload under deploy/');
  });

  it('every container of every pod template sets readOnlyRootFilesystem: true (not part of PodSecurity "restricted")', () => {
    assert.deepEqual(writableRoots(templates), []);
  });

  it('the readOnlyRootFilesystem check catches an unset, a false and an init container without it', () => {
    const template = (containers: Obj[], initContainers: Obj[] = []): PodTemplate[] => {
      const doc = { kind: 'Deployment', metadata: { name: 'x' }, spec: { template: { spec: { containers, initContainers } } } };
      const spec = podSpecOf(doc);
      assert.ok(spec);
      return [{ where: 'variant', spec }];
    };
    const ok = { name: 'ok', securityContext: { readOnlyRootFilesystem: true } };
    assert.deepEqual(writableRoots(template([ok])), []);
    assert.deepEqual(writableRoots(template([{ name: 'unset', securityContext: { runAsNonRoot: true } }])), ['variant container unset']);
    assert.deepEqual(writableRoots(template([{ name: 'no', securityContext: { readOnlyRootFilesystem: false } }])), ['variant container no']);
    assert.deepEqual(writableRoots(template([ok], [{ name: 'init' }])), ['variant container init']);
  });

  it('a pgim container mounts writable volumes exactly where pgim writes: the PGDATA volume, the runtime dir and /tmp', () => {
    const problems: string[] = [];
    let pgimContainers = 0;
    for (const { where, spec } of templates) {
      const volumes = new Map(objects(spec.volumes).map((v) => [String(v.name), v]));
      for (const c of objects(spec.containers)) {
        const env = new Map(objects(c.env).map((e) => [String(e.name), e.value]));
        const pgdata = typeof env.get('PGDATA') === 'string' ? String(env.get('PGDATA')) : '/var/lib/postgresql/data/pgdata';
        const runtime = typeof env.get('PGIM_RUNTIME_DIR') === 'string' ? String(env.get('PGIM_RUNTIME_DIR')) : '/controller';
        const tmp = typeof env.get('TMPDIR') === 'string' ? String(env.get('TMPDIR')) : '/tmp';
        if (!objects(c.ports).some((p) => p.containerPort === 5432)) continue; // not a PostgreSQL container
        pgimContainers++;
        const mounts = objects(c.volumeMounts);
        const writableMountFor = (path: string): Obj | undefined =>
          mounts
            .filter((m) => m.readOnly !== true && typeof m.mountPath === 'string' && (path === m.mountPath || path.startsWith(`${m.mountPath.replace(/\/$/, '')}/`)))
            .sort((a, b) => String(b.mountPath).length - String(a.mountPath).length)[0];
        for (const [what, path] of [['PGDATA', pgdata], ['runtime dir', runtime], ['TMPDIR', tmp], ['/tmp', '/tmp']] as const) {
          const mount = writableMountFor(path);
          if (!mount) {
            problems.push(`${where}: no writable volume for ${what} (${path})`);
            continue;
          }
          const volume = volumes.get(String(mount.name));
          if (!volume || !(isObj(volume.emptyDir) || isObj(volume.persistentVolumeClaim) || isObj(volume.ephemeral))) {
            problems.push(`${where}: ${what} is on volume ${String(mount.name)}, which is not an emptyDir, PVC or ephemeral volume`);
          }
        }
        // PGDATA itself must not be the mount point: pgim writes its bootstrap marker beside it and initdb wants it empty.
        const dataMount = writableMountFor(pgdata);
        if (dataMount?.mountPath === pgdata) problems.push(`${where}: PGDATA is a mount point; mount its parent (CNPG: /var/lib/postgresql/data)`);
      }
    }
    assert.ok(pgimContainers > 0, 'no container serving 5432 under deploy/');
    assert.deepEqual(problems, []);
  });
});
