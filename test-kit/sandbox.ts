import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** One bind mount into a container's root: a host folder or file at a path inside the container. */
export interface SandboxMount {
  readonly hostPath: string;
  readonly containerPath: string;
  readonly readOnly: boolean;
}

export interface SandboxSpec {
  /** An empty host folder: the container's root is a tmpfs mounted there, inside the container's mount namespace. */
  readonly rootDir: string;
  /** Host top-level folders shared read-write with the container (the "image": /usr, /etc, ...). */
  readonly hostDirs: readonly string[];
  /**
   * Host folders bound at the same path after the container's private /tmp is mounted (the source tree pgim runs
   * from: a clone under /tmp, as CI may use, would otherwise be hidden by that /tmp).
   */
  readonly hostTrees: readonly string[];
  readonly mounts: readonly SandboxMount[];
  readonly hostsFile: string;
  readonly uid: number;
  readonly gid: number;
  readonly argv: readonly string[];
  readonly env: Record<string, string>;
  readonly workingDir?: string;
  readonly logPath: string;
}

const q = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

/**
 * The shell script that builds a container's filesystem inside a fresh private mount namespace (`unshare -m`):
 * a tmpfs root, the host's system folders bound into it (the image: this machine's PostgreSQL, Node.js and pgim),
 * a private /var and /tmp, the pod's volumes at their mount paths, the pod's generated /etc/hosts; then `chroot`
 * as the container's user. Nothing is mounted or created outside the namespace except the (empty) root folder.
 */
export function sandboxScript(spec: SandboxSpec): string {
  const r = q(spec.rootDir);
  const lines = [
    'set -eu',
    `mount -t tmpfs -o mode=755 pgim-test-pod ${r}`,
    `for d in ${spec.hostDirs.map(q).join(' ')}; do`,
    '  if [ -L "/$d" ]; then ln -s "$(readlink "/$d")" ' + r + '"/$d";',
    '  elif [ -d "/$d" ]; then mkdir -p ' + r + '"/$d"; mount --rbind "/$d" ' + r + '"/$d"; fi',
    'done',
    // /var is the container's own (PGDATA is mounted under it), with /var/run a folder, never the host's /run.
    `mkdir -p ${r}/var/lib/postgresql ${r}/var/run ${r}/var/tmp ${r}/tmp ${r}/run`,
    `mount -t tmpfs -o mode=1777 pgim-test-tmp ${r}/tmp`,
    ...spec.hostTrees.flatMap((tree) => [`mkdir -p ${r}${q(tree)}`, `mount --rbind ${q(tree)} ${r}${q(tree)}`]),
  ];
  // Parents before children (/run before /run/secrets/...).
  const mounts = [...spec.mounts].sort((a, b) => a.containerPath.split('/').length - b.containerPath.split('/').length);
  for (const m of mounts) {
    const target = `${r}${q(m.containerPath)}`;
    lines.push(`if [ -d ${q(m.hostPath)} ]; then mkdir -p ${target}; else mkdir -p "$(dirname ${target})"; : > ${target}; fi`);
    lines.push(`mount --bind ${q(m.hostPath)} ${target}`);
    if (m.readOnly) lines.push(`mount -o remount,bind,ro ${target}`);
  }
  lines.push(`mount --bind ${q(spec.hostsFile)} ${r}/etc/hosts`);
  const cd = spec.workingDir === undefined ? '' : `cd ${q(spec.workingDir)} && `;
  lines.push(
    `exec chroot --userspec=${spec.uid}:${spec.gid} --groups=${spec.gid} ${r} /bin/sh -c ${q(`${cd}exec "$@"`)} container ${spec.argv.map(q).join(' ')}`,
  );
  return `${lines.join('\n')}\n`;
}

/** Starts a container: `unshare -m --propagation private sh <script>`; its own process group, output to its log. */
export async function startSandbox(spec: SandboxSpec, scriptDir: string, name: string): Promise<ChildProcess> {
  await mkdir(spec.rootDir, { recursive: true });
  const scriptPath = join(scriptDir, `${name}.sh`);
  await writeFile(scriptPath, sandboxScript(spec), { mode: 0o700 });
  const fd = openSync(spec.logPath, 'a');
  try {
    return spawn('unshare', ['-m', '--propagation', 'private', '/bin/sh', scriptPath], {
      env: spec.env,
      stdio: ['ignore', fd, fd],
      detached: true,
    });
  } finally {
    closeSync(fd);
  }
}
