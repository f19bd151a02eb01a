import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { dirname, join } from 'node:path';
import { sleep } from '../../test-kit/env.js';
import type { RawResponse, TestApiServer } from '../k8s/apiserver.js';
import { ExecServer, type ExecTarget } from './exec-server.js';
import { startSandbox, type SandboxMount } from './sandbox.js';

/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-return -- Kubernetes objects (pods, volumes, probes) are read loosely, as the API returns them: the test kubelet handles only the fields CNPG uses and fails a pod on anything else. */
type K8sObject = Record<string, any>;

/** The host's folders every container sees (its "image"): system folders, plus the source tree pgim runs from. */
const systemDirs = ['usr', 'bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32', 'etc', 'opt', 'proc', 'sys', 'dev'];

export interface KubeletOptions {
  readonly nodeName: string;
  /** Pods, volumes, logs. */
  readonly dir: string;
  /** The command that stands in for `/controller/manager` (the bootstrap-controller init container installs it). */
  readonly managerLauncher: string;
  /** Host folders the launcher needs, bound at the same path (the source tree of /work/<tree>/dist/cmd/pgim.js). */
  readonly hostTrees: readonly string[];
  /** Pod IPs are `<ipPrefix>.<n>`, n = 2, 3, ... (each pod its own loopback address). */
  readonly ipPrefix: string;
  /** The OS account containers run as (CNPG's runAsUser 26 / fsGroup 26 map to it). */
  readonly user: { readonly uid: number; readonly gid: number };
  /** Extra environment for every container (documented in the README). */
  readonly extraEnv: (podIP: string) => Record<string, string>;
  /** The streaming server's certificate (exec), signed by the CA the API server trusts for kubelets. */
  readonly servingTls: { readonly certFile: string; readonly keyFile: string };
}

function ok(res: RawResponse, what: string): RawResponse {
  if (res.status < 200 || res.status > 299) throw new Error(`${what}: HTTP ${res.status}: ${res.text.slice(0, 1000)}`);
  return res;
}

const now = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

interface ContainerState {
  readonly name: string;
  readonly spec: K8sObject;
  proc?: ChildProcess | undefined;
  restartCount: number;
  startedAt?: string;
  terminated?: { exitCode: number; startedAt: string; finishedAt: string; reason: string } | undefined;
  ready: boolean;
  started: boolean;
  probeTimers: NodeJS.Timeout[];
  /** The environment it was started with (an exec gets the same). */
  env?: Record<string, string>;
  /** A test's fault: the next restart waits this long (a node that is down, not a container the kubelet restarts at once). */
  holdRestartMs?: number | undefined;
}

/** A pod's whole life on this node: volumes, init containers in order, containers, probes, status, deletion. */
class PodRunner {
  readonly key: string;
  private readonly dir: string;
  readonly hostsFile: string;
  private readonly inits: ContainerState[];
  private readonly containers: ContainerState[];
  private readonly mountsByVolume = new Map<string, string>();
  private phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' = 'Pending';
  private message: string | undefined;
  private initialized = false;
  private stopping = false;
  private readonly startTime = now();
  private statusDirty = true;
  private lastStatusJson = '';

  constructor(
    private readonly kubelet: TestKubelet,
    readonly pod: K8sObject,
    readonly ip: string,
  ) {
    this.key = `${pod.metadata.namespace}/${pod.metadata.name}`;
    this.dir = join(kubelet.options.dir, 'pods', `${pod.metadata.namespace}_${pod.metadata.name}_${pod.metadata.uid}`);
    this.hostsFile = join(this.dir, 'hosts');
    const state = (spec: K8sObject): ContainerState => ({ name: spec.name, spec, restartCount: 0, ready: false, started: false, probeTimers: [] });
    this.inits = (pod.spec.initContainers ?? []).map(state);
    this.containers = (pod.spec.containers ?? []).map(state);
  }

  get namespace(): string {
    return this.pod.metadata.namespace;
  }

  get uid(): string {
    return this.pod.metadata.uid;
  }

  /** Pod failed before or while running: visible in its status, never silently ignored. */
  private fail(message: string): void {
    this.phase = 'Failed';
    this.message = message;
    this.statusDirty = true;
    this.kubelet.note(`pod ${this.key} failed: ${message}`);
  }

  async run(): Promise<void> {
    await mkdir(join(this.dir, 'logs'), { recursive: true });
    await this.kubelet.writeHosts(this);
    try {
      await this.prepareVolumes();
    } catch (err) {
      this.fail(`volume setup: ${(err as Error).message}`);
      return;
    }
    for (const init of this.inits) {
      for (;;) {
        if (this.stopping) return;
        const code = await this.runInit(init);
        if (code === 0) break;
        if (this.pod.spec.restartPolicy === 'Never') {
          this.fail(`init container ${init.name} exited with ${code}`);
          return;
        }
        init.restartCount++;
        await sleep(1000);
      }
    }
    this.initialized = true;
    this.phase = 'Running';
    this.statusDirty = true;
    await Promise.all(this.containers.map((c) => this.runContainer(c)));
    if (this.stopping) return;
    const failed = this.containers.some((c) => (c.terminated?.exitCode ?? 1) !== 0);
    this.phase = failed ? 'Failed' : 'Succeeded';
    this.statusDirty = true;
  }

  private async runInit(init: ContainerState): Promise<number> {
    const command: string[] = [...(init.spec.command ?? []), ...(init.spec.args ?? [])];
    init.startedAt = now();
    // CNPG's bootstrap-controller init container copies the operator image's manager to /controller/manager.
    // Here the copy is pgim's launcher: pgim stands in for CNPG's instance manager.
    if (init.name === 'bootstrap-controller' && command[0] === '/manager' && command[1] === 'bootstrap' && command[2] !== undefined) {
      const target = this.hostPathFor(init.spec, command[2]);
      if (target === undefined) throw new Error(`bootstrap-controller: ${command[2]} is on no volume`);
      await writeFile(target, `#!/bin/sh\nexec ${this.kubelet.options.managerLauncher} "$@"\n`, { mode: 0o755 });
      await chown(target, this.kubelet.options.user.uid, this.kubelet.options.user.gid);
      init.terminated = { exitCode: 0, startedAt: init.startedAt, finishedAt: now(), reason: 'Completed' };
      this.statusDirty = true;
      return 0;
    }
    const code = await this.startAndWait(init);
    return code;
  }

  /** The host path behind a path inside a container (through its volume mounts). */
  private hostPathFor(container: K8sObject, path: string): string | undefined {
    let best: { mountPath: string; host: string } | undefined;
    for (const m of container.volumeMounts ?? []) {
      const host = this.mountsByVolume.get(m.name);
      if (host === undefined) continue;
      if ((path === m.mountPath || path.startsWith(`${m.mountPath}/`)) && (best === undefined || m.mountPath.length > best.mountPath.length)) {
        best = { mountPath: m.mountPath, host: join(host, m.subPath ?? '') };
      }
    }
    return best === undefined ? undefined : join(best.host, path.slice(best.mountPath.length));
  }

  private async prepareVolumes(): Promise<void> {
    const { uid, gid } = this.kubelet.options.user;
    for (const volume of this.pod.spec.volumes ?? []) {
      const dir = join(this.dir, 'volumes', volume.name);
      if (volume.emptyDir !== undefined) {
        await mkdir(dir, { recursive: true });
        await chown(dir, uid, gid);
        await chmod(dir, 0o2775);
      } else if (volume.persistentVolumeClaim !== undefined) {
        const claim = volume.persistentVolumeClaim.claimName as string;
        const pvc = ok(await this.kubelet.api.request(`/api/v1/namespaces/${this.namespace}/persistentvolumeclaims/${claim}`), `PVC ${claim}`).body as K8sObject;
        const pvName = pvc.spec.volumeName as string | undefined;
        if (pvName === undefined || pvName === '') throw new Error(`PVC ${claim} is not bound`);
        const pv = ok(await this.kubelet.api.request(`/api/v1/persistentvolumes/${pvName}`), `PV ${pvName}`).body as K8sObject;
        const hostPath = pv.spec.hostPath?.path as string | undefined;
        if (hostPath === undefined) throw new Error(`PV ${pvName} is not a hostPath volume`);
        this.mountsByVolume.set(volume.name, hostPath);
        continue;
      } else if (volume.projected !== undefined || volume.secret !== undefined || volume.configMap !== undefined || volume.downwardAPI !== undefined) {
        await mkdir(dir, { recursive: true });
        const sources: K8sObject[] = volume.projected?.sources ?? [volume.secret !== undefined ? { secret: volume.secret } : volume.configMap !== undefined ? { configMap: volume.configMap } : { downwardAPI: volume.downwardAPI }];
        const mode = (volume.projected?.defaultMode ?? volume.secret?.defaultMode ?? volume.configMap?.defaultMode ?? 0o644) as number;
        for (const source of sources) await this.writeProjection(dir, source, mode);
        await chown(dir, uid, gid);
      } else {
        throw new Error(`volume ${volume.name}: type ${Object.keys(volume).filter((k) => k !== 'name').join(',')} is not supported by the test kubelet`);
      }
      this.mountsByVolume.set(volume.name, dir);
    }
  }

  private async writeProjection(dir: string, source: K8sObject, mode: number): Promise<void> {
    const { uid, gid } = this.kubelet.options.user;
    const put = async (path: string, content: string | Buffer, fileMode?: number): Promise<void> => {
      const file = join(dir, path);
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, content, { mode: fileMode ?? mode });
      await chmod(file, fileMode ?? mode);
      await chown(file, uid, gid);
    };
    if (source.serviceAccountToken !== undefined) {
      const sat = source.serviceAccountToken;
      const res = ok(
        await this.kubelet.api.request(`/api/v1/namespaces/${this.namespace}/serviceaccounts/${this.pod.spec.serviceAccountName ?? 'default'}/token`, {
          method: 'POST',
          body: {
            apiVersion: 'authentication.k8s.io/v1',
            kind: 'TokenRequest',
            spec: {
              ...(sat.audience === undefined ? {} : { audiences: [sat.audience] }),
              expirationSeconds: sat.expirationSeconds ?? 3600,
              boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: this.pod.metadata.name, uid: this.uid },
            },
          },
        }),
        'TokenRequest',
      );
      await put(sat.path, (res.body as K8sObject).status.token as string);
      return;
    }
    const kind = source.secret !== undefined ? 'secrets' : source.configMap !== undefined ? 'configmaps' : undefined;
    if (kind !== undefined) {
      const ref = source.secret ?? source.configMap;
      const name = (ref.name ?? ref.secretName) as string;
      const res = await this.kubelet.api.request(`/api/v1/namespaces/${this.namespace}/${kind}/${name}`);
      if (res.status === 404 && ref.optional === true) return;
      const obj = ok(res, `${kind} ${name}`).body as K8sObject;
      const data: Record<string, Buffer> = {};
      for (const [k, v] of Object.entries((obj.data ?? {}) as Record<string, string>)) data[k] = kind === 'secrets' ? Buffer.from(v, 'base64') : Buffer.from(v);
      for (const [k, v] of Object.entries((obj.binaryData ?? {}) as Record<string, string>)) data[k] = Buffer.from(v, 'base64');
      const items = (ref.items as K8sObject[] | undefined) ?? Object.keys(data).map((key): K8sObject => ({ key, path: key }));
      for (const item of items) {
        const value = data[item.key as string];
        if (value === undefined) throw new Error(`${kind} ${name} has no key ${String(item.key)}`);
        await put(item.path, value, item.mode);
      }
      return;
    }
    if (source.downwardAPI !== undefined) {
      for (const item of source.downwardAPI.items ?? []) {
        if (item.fieldRef === undefined) throw new Error('downwardAPI: only fieldRef items are supported');
        await put(item.path, this.fieldRef(item.fieldRef.fieldPath), item.mode);
      }
      return;
    }
    throw new Error(`projected source ${Object.keys(source).join(',')} is not supported by the test kubelet`);
  }

  fieldRef(path: string): string {
    const labels = /^metadata\.labels\['(.+)'\]$/.exec(path);
    if (labels !== null) return String(this.pod.metadata.labels?.[labels[1] ?? ''] ?? '');
    const annotations = /^metadata\.annotations\['(.+)'\]$/.exec(path);
    if (annotations !== null) return String(this.pod.metadata.annotations?.[annotations[1] ?? ''] ?? '');
    switch (path) {
      case 'metadata.name':
        return this.pod.metadata.name;
      case 'metadata.namespace':
        return this.namespace;
      case 'metadata.uid':
        return this.uid;
      case 'spec.nodeName':
        return this.kubelet.options.nodeName;
      case 'spec.serviceAccountName':
        return this.pod.spec.serviceAccountName ?? 'default';
      case 'status.podIP':
        return this.ip;
      case 'status.hostIP':
        return '127.0.0.1';
      default:
        throw new Error(`fieldRef ${path} is not supported by the test kubelet`);
    }
  }

  private async containerEnv(container: K8sObject): Promise<Record<string, string>> {
    const env: Record<string, string> = {
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      HOSTNAME: this.pod.spec.hostname ?? this.pod.metadata.name,
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
      KUBERNETES_SERVICE_PORT: String(this.kubelet.api.port),
      ...this.kubelet.options.extraEnv(this.ip),
    };
    const lookup = async (kind: 'secrets' | 'configmaps', name: string, optional: boolean): Promise<Record<string, string> | undefined> => {
      const res = await this.kubelet.api.request(`/api/v1/namespaces/${this.namespace}/${kind}/${name}`);
      if (res.status === 404 && optional) return undefined;
      const obj = ok(res, `${kind} ${name}`).body as K8sObject;
      const out: Record<string, string> = {};
      for (const [k, v] of Object.entries((obj.data ?? {}) as Record<string, string>)) out[k] = kind === 'secrets' ? Buffer.from(v, 'base64').toString('utf8') : v;
      return out;
    };
    for (const from of container.envFrom ?? []) {
      const ref = from.secretRef ?? from.configMapRef;
      const data = await lookup(from.secretRef !== undefined ? 'secrets' : 'configmaps', ref.name, ref.optional === true);
      for (const [k, v] of Object.entries(data ?? {})) env[`${from.prefix ?? ''}${k}`] = v;
    }
    for (const e of container.env ?? []) {
      if (e.value !== undefined || e.valueFrom === undefined) {
        env[e.name] = e.value ?? '';
      } else if (e.valueFrom.fieldRef !== undefined) {
        env[e.name] = this.fieldRef(e.valueFrom.fieldRef.fieldPath);
      } else if (e.valueFrom.secretKeyRef !== undefined || e.valueFrom.configMapKeyRef !== undefined) {
        const ref = e.valueFrom.secretKeyRef ?? e.valueFrom.configMapKeyRef;
        const data = await lookup(e.valueFrom.secretKeyRef !== undefined ? 'secrets' : 'configmaps', ref.name, ref.optional === true);
        const value = data?.[ref.key];
        if (value === undefined && ref.optional !== true) throw new Error(`env ${e.name}: key ${ref.key} missing in ${ref.name}`);
        if (value !== undefined) env[e.name] = value;
      } else {
        throw new Error(`env ${e.name}: ${Object.keys(e.valueFrom).join(',')} is not supported by the test kubelet`);
      }
    }
    return env;
  }

  private async startAndWait(c: ContainerState): Promise<number> {
    const { uid, gid } = this.kubelet.options.user;
    const mounts: SandboxMount[] = [];
    for (const m of c.spec.volumeMounts ?? []) {
      const host = this.mountsByVolume.get(m.name);
      if (host === undefined) throw new Error(`container ${c.name}: volume ${m.name} is not defined`);
      const top = (m.mountPath as string).split('/')[1] ?? '';
      if ((systemDirs.includes(top) || this.kubelet.options.hostTrees.some((tree) => m.mountPath.startsWith(`${tree}/`))) && !existsSync(m.mountPath)) {
        throw new Error(`container ${c.name}: mount path ${m.mountPath} would be created in the host's /${top}`);
      }
      mounts.push({ hostPath: join(host, m.subPath ?? ''), containerPath: m.mountPath, readOnly: m.readOnly === true });
    }
    const argv: string[] = [...(c.spec.command ?? []), ...(c.spec.args ?? [])];
    if (argv.length === 0) throw new Error(`container ${c.name}: no command (images have no entrypoint here)`);
    const env = await this.containerEnv(c.spec);
    c.env = env;
    const attempt = c.restartCount;
    c.startedAt = now();
    c.terminated = undefined;
    c.started = false;
    c.ready = false;
    const proc = await startSandbox(
      {
        rootDir: join(this.dir, 'root', c.name),
        hostDirs: systemDirs,
        hostTrees: this.kubelet.options.hostTrees,
        mounts,
        hostsFile: this.hostsFile,
        uid,
        gid,
        argv,
        env,
        workingDir: c.spec.workingDir,
        logPath: join(this.dir, 'logs', `${c.name}-${attempt}.log`),
      },
      this.dir,
      `${c.name}-${attempt}`,
    );
    c.proc = proc;
    this.statusDirty = true;
    this.startProbes(c);
    const code = await new Promise<number>((resolve) => {
      proc.once('exit', (exitCode, signal) => {
        resolve(exitCode ?? (signal === null ? 1 : 128 + (signal === 'SIGKILL' ? 9 : 15)));
      });
      proc.once('error', () => {
        resolve(127);
      });
    });
    this.stopProbes(c);
    // Whatever the container left in its process group (postgres after a crash of its manager) goes with it.
    try {
      if (proc.pid !== undefined) process.kill(-proc.pid, 'SIGKILL');
    } catch {
      // group already empty
    }
    c.proc = undefined;
    c.ready = false;
    c.terminated = { exitCode: code, startedAt: c.startedAt, finishedAt: now(), reason: code === 0 ? 'Completed' : 'Error' };
    this.statusDirty = true;
    return code;
  }

  private async runContainer(c: ContainerState): Promise<void> {
    for (;;) {
      let code: number;
      try {
        code = await this.startAndWait(c);
      } catch (err) {
        this.fail((err as Error).message);
        return;
      }
      if (this.stopping) return;
      const policy = this.pod.spec.restartPolicy ?? 'Always';
      if (policy === 'Never' || (policy === 'OnFailure' && code === 0)) return;
      c.restartCount++;
      this.kubelet.note(`pod ${this.key}: container ${c.name} exited with ${code}; restart ${c.restartCount}`);
      await sleep(Math.min(10_000, 1000 * c.restartCount));
      const hold = c.holdRestartMs;
      c.holdRestartMs = undefined;
      if (hold !== undefined) {
        this.kubelet.note(`pod ${this.key}: restart of container ${c.name} held ${hold} ms by the test`);
        await sleep(hold);
      }
      if (this.isStopping()) return;
    }
  }

  /** A method, so the compiler does not assume the flag unchanged across an await. */
  private isStopping(): boolean {
    return this.stopping;
  }

  private startProbes(c: ContainerState): void {
    const startup = c.spec.startupProbe as K8sObject | undefined;
    const readiness = c.spec.readinessProbe as K8sObject | undefined;
    const liveness = c.spec.livenessProbe as K8sObject | undefined;
    if (startup === undefined) c.started = true;
    if (readiness === undefined) c.ready = c.started;
    /** Runs `probe` every periodSeconds while `gate` holds; returns a function that probes once at once. */
    const schedule = (probe: K8sObject, onResult: (success: boolean, failures: number) => void, gate: () => boolean): (() => Promise<void>) => {
      let failures = 0;
      let successes = 0;
      const once = async (): Promise<void> => {
        if (c.proc === undefined || !gate()) return;
        const success = await this.probe(c, probe);
        if (success) {
          successes++;
          failures = 0;
        } else {
          failures++;
          successes = 0;
        }
        if (!success || successes >= (probe.successThreshold ?? 1)) onResult(success, failures);
      };
      const tick = async (): Promise<void> => {
        await once();
        if (c.proc !== undefined) c.probeTimers.push(setTimeout(() => void tick(), 1000 * (probe.periodSeconds ?? 10)));
      };
      c.probeTimers.push(setTimeout(() => void tick(), 1000 * (probe.initialDelaySeconds ?? 0) + 200));
      return once;
    };
    let probeReadinessNow: (() => Promise<void>) | undefined;
    if (readiness !== undefined) {
      probeReadinessNow = schedule(
        readiness,
        (success, failures) => {
          const ready = success ? true : failures >= (readiness.failureThreshold ?? 3) ? false : c.ready;
          if (ready !== c.ready) {
            c.ready = ready;
            this.statusDirty = true;
          }
        },
        () => c.started,
      );
    }
    if (startup !== undefined) {
      schedule(
        startup,
        (success, failures) => {
          if (success) {
            c.started = true;
            if (readiness === undefined) c.ready = true;
            this.statusDirty = true;
            // As the kubelet does: readiness is probed as soon as the startup probe has passed.
            void probeReadinessNow?.();
          } else if (failures >= (startup.failureThreshold ?? 3)) {
            this.kill(c, `startup probe failed ${failures} times`);
          }
        },
        () => !c.started,
      );
    }
    if (liveness !== undefined) {
      schedule(
        liveness,
        (success, failures) => {
          if (!success && failures >= (liveness.failureThreshold ?? 3)) this.kill(c, `liveness probe failed ${failures} times`);
        },
        () => c.started,
      );
    }
  }

  private stopProbes(c: ContainerState): void {
    for (const t of c.probeTimers) clearTimeout(t);
    c.probeTimers.length = 0;
  }

  /** The kubelet's HTTP probe: the pod IP, the port (number or name), any certificate accepted, 2xx/3xx pass. */
  private probe(c: ContainerState, probe: K8sObject): Promise<boolean> {
    const get = probe.httpGet as K8sObject | undefined;
    if (get === undefined) {
      this.kill(c, `probe type ${Object.keys(probe).join(',')} is not supported by the test kubelet`);
      return Promise.resolve(false);
    }
    const port = typeof get.port === 'number' ? get.port : Number((c.spec.ports ?? []).find((p: K8sObject) => p.name === get.port)?.containerPort);
    const send = get.scheme === 'HTTPS' ? httpsRequest : httpRequest;
    return new Promise((resolve) => {
      const req = send(
        { host: get.host ?? this.ip, port, path: get.path ?? '/', method: 'GET', rejectUnauthorized: false, timeout: 1000 * (probe.timeoutSeconds ?? 1) },
        (res) => {
          res.resume();
          const code = res.statusCode ?? 0;
          resolve(code >= 200 && code < 400);
        },
      );
      req.on('timeout', () => req.destroy());
      req.on('error', () => {
        resolve(false);
      });
      req.end();
    });
  }

  private kill(c: ContainerState, why: string): void {
    this.kubelet.note(`pod ${this.key}: killing container ${c.name}: ${why}`);
    this.signal(c, 'SIGTERM');
    const proc = c.proc;
    const grace = 1000 * (this.pod.spec.terminationGracePeriodSeconds ?? 30);
    setTimeout(() => {
      if (c.proc === proc) this.signal(c, 'SIGKILL');
    }, grace).unref();
  }

  private signal(c: ContainerState, signal: NodeJS.Signals): void {
    const pid = c.proc?.pid;
    if (pid === undefined) return;
    try {
      process.kill(signal === 'SIGKILL' ? -pid : pid, signal);
    } catch {
      // gone
    }
  }

  /** Where an exec into a running container runs (undefined when it does not run). */
  execTarget(name: string): ExecTarget | undefined {
    const c = this.containers.find((x) => x.name === name);
    const pid = c?.proc?.pid;
    if (c?.env === undefined || pid === undefined) return undefined;
    return { pid, uid: this.kubelet.options.user.uid, gid: this.kubelet.options.user.gid, env: c.env };
  }

  /**
   * Signals a running container's main process only (the process the image's entrypoint became): what a crash of
   * the instance manager looks like. When it exits, the rest of its process group goes with it, as a pod's PID
   * namespace would, and the restart policy applies (after `holdRestartMs` more, when given). Returns the pid signalled.
   */
  signalMain(name: string, signal: NodeJS.Signals, holdRestartMs?: number): number {
    const c = this.containers.find((x) => x.name === name);
    const pid = c?.proc?.pid;
    if (c === undefined || pid === undefined) throw new Error(`pod ${this.key}: container ${name} is not running`);
    c.holdRestartMs = holdRestartMs;
    this.kubelet.note(`pod ${this.key}: ${signal} to container ${name} (pid ${pid}) by the test`);
    process.kill(pid, signal);
    return pid;
  }

  /** Graceful stop: SIGTERM to every running container, SIGKILL after the grace period. */
  async stop(graceSeconds?: number): Promise<void> {
    this.stopping = true;
    const running = [...this.inits, ...this.containers].filter((c) => c.proc !== undefined);
    for (const c of running) this.signal(c, 'SIGTERM');
    const deadline = Date.now() + 1000 * (graceSeconds ?? this.pod.spec.terminationGracePeriodSeconds ?? 30);
    while (running.some((c) => c.proc !== undefined) && Date.now() < deadline) await sleep(100);
    for (const c of running) this.signal(c, 'SIGKILL');
    while (running.some((c) => c.proc !== undefined)) await sleep(50);
  }

  private containerStatus(c: ContainerState, isInit: boolean): K8sObject {
    const state = c.proc !== undefined && c.startedAt !== undefined ? { running: { startedAt: c.startedAt } } : c.terminated !== undefined ? { terminated: c.terminated } : { waiting: { reason: isInit || !this.initialized ? 'PodInitializing' : 'ContainerCreating' } };
    return {
      name: c.name,
      image: c.spec.image,
      imageID: '',
      containerID: c.proc?.pid === undefined ? undefined : `pgim-test://${c.proc.pid}`,
      ready: isInit ? c.terminated?.exitCode === 0 : c.ready,
      started: isInit ? c.proc !== undefined : c.started,
      restartCount: c.restartCount,
      state,
    };
  }

  statusDocument(): K8sObject {
    const ready = this.phase === 'Running' && this.containers.every((c) => c.ready);
    const cond = (type: string, status: boolean): K8sObject => ({ type, status: status ? 'True' : 'False', lastTransitionTime: null });
    return {
      phase: this.phase,
      ...(this.message === undefined ? {} : { message: this.message, reason: 'TestKubelet' }),
      hostIP: '127.0.0.1',
      hostIPs: [{ ip: '127.0.0.1' }],
      podIP: this.ip,
      podIPs: [{ ip: this.ip }],
      startTime: this.startTime,
      conditions: [cond('PodScheduled', true), cond('Initialized', this.initialized), cond('ContainersReady', ready), cond('Ready', ready)],
      initContainerStatuses: this.inits.map((c) => this.containerStatus(c, true)),
      containerStatuses: this.containers.map((c) => this.containerStatus(c, false)),
    };
  }

  /** PATCHes the pod's status when something changed (the transition times are kept from the last write). */
  async syncStatus(): Promise<void> {
    if (!this.statusDirty && !this.containers.some((c) => c.proc !== undefined)) return;
    const status = this.statusDocument();
    const json = JSON.stringify(status);
    if (json === this.lastStatusJson) return;
    const stamp = now();
    for (const c of status.conditions as K8sObject[]) c.lastTransitionTime = stamp;
    const res = await this.kubelet.api.request(`/api/v1/namespaces/${this.namespace}/pods/${this.pod.metadata.name}/status`, {
      method: 'PATCH',
      contentType: 'application/merge-patch+json',
      body: { metadata: { uid: this.uid }, status },
    });
    if (res.status === 200) {
      this.lastStatusJson = json;
      this.statusDirty = false;
    }
  }

  get done(): boolean {
    return this.phase === 'Succeeded' || this.phase === 'Failed';
  }
}

/**
 * A test kubelet: registers a Node, runs the pods the scheduler binds to it as local processes (each container in
 * its own mount namespace, see sandbox.ts), reports their status, keeps each pod's /etc/hosts current with the
 * Services of its namespace (their ready endpoints), and provisions a hostPath PersistentVolume for
 * every pending PersistentVolumeClaim (the PV controller of kube-controller-manager binds them).
 *
 * Only what CloudNativePG's pods use is implemented; anything else fails the pod with a message in its status.
 */
export class TestKubelet {
  private readonly pods = new Map<string, PodRunner>();
  private nextIp = 2;
  private loop: Promise<void> | undefined;
  private exec: ExecServer | undefined;
  private stopped = false;
  readonly events: string[] = [];

  constructor(
    readonly api: TestApiServer,
    readonly options: KubeletOptions,
  ) {}

  note(line: string): void {
    this.events.push(`${now()} ${line}`);
  }

  async start(): Promise<void> {
    await mkdir(this.options.dir, { recursive: true });
    const node = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: this.options.nodeName, labels: { 'kubernetes.io/hostname': this.options.nodeName, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64' } },
      spec: {},
    };
    ok(await this.api.request('/api/v1/nodes', { method: 'POST', body: node }), 'register Node');
    this.exec = await ExecServer.start(
      this.options.servingTls,
      (namespace, pod, container) => {
        for (const runner of this.pods.values()) if (runner.namespace === namespace && runner.pod.metadata.name === pod && !runner.done) return runner.execTarget(container);
        return undefined;
      },
      (line) => {
        this.note(line);
      },
    );
    const capacity = { cpu: '16', memory: '64Gi', pods: '110', 'ephemeral-storage': '100Gi' };
    ok(
      await this.api.request(`/api/v1/nodes/${this.options.nodeName}/status`, {
        method: 'PATCH',
        contentType: 'application/merge-patch+json',
        body: {
          status: {
            capacity,
            allocatable: capacity,
            // No Hostname address: the API server would dial the kubelet by a name nothing resolves.
            addresses: [{ type: 'InternalIP', address: '127.0.0.1' }],
            daemonEndpoints: { kubeletEndpoint: { Port: this.exec.port } },
            // The API server then proxies exec WebSockets here as they are (no translation to SPDY).
            declaredFeatures: ['ExtendWebSocketsToKubelet'],
            conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'test kubelet', lastHeartbeatTime: now(), lastTransitionTime: now() }],
            nodeInfo: { architecture: 'amd64', operatingSystem: 'linux', kubeletVersion: 'v1.36.3', containerRuntimeVersion: 'pgim-test://1', kernelVersion: '', osImage: '', kubeProxyVersion: '', machineID: '', systemUUID: '', bootID: '' },
          },
        },
      }),
      'Node status',
    );
    // The TaintNodesByCondition admission plugin registers every Node with the not-ready taint, which the node
    // lifecycle controller lifts once the Node is Ready; that controller is off (no Lease renewal here), so the
    // kubelet lifts it itself.
    ok(
      await this.api.request(`/api/v1/nodes/${this.options.nodeName}`, { method: 'PATCH', contentType: 'application/merge-patch+json', body: { spec: { taints: null } } }),
      'Node taints',
    );
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.tick();
      } catch (err) {
        this.note(`sync error: ${(err as Error).message}`);
      }
      await sleep(300);
    }
  }

  private async tick(): Promise<void> {
    await this.provisionVolumes();
    const list = ok(await this.api.request(`/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${this.options.nodeName}`)}`), 'list pods').body as K8sObject;
    const seen = new Set<string>();
    for (const pod of list.items as K8sObject[]) {
      seen.add(pod.metadata.uid);
      let runner = this.pods.get(pod.metadata.uid);
      if (runner === undefined) {
        if (pod.metadata.deletionTimestamp !== undefined) {
          await this.api.request(`/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}`, { method: 'DELETE', body: { gracePeriodSeconds: 0, preconditions: { uid: pod.metadata.uid } } });
          continue;
        }
        if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') continue;
        runner = new PodRunner(this, pod, `${this.options.ipPrefix}.${this.nextIp++}`);
        this.pods.set(pod.metadata.uid, runner);
        this.note(`pod ${runner.key} started with IP ${runner.ip}`);
        const started = runner;
        void started.run().catch((err: unknown) => {
          this.note(`pod ${started.key}: ${(err as Error).message}`);
        });
      } else if (pod.metadata.deletionTimestamp !== undefined) {
        this.pods.delete(pod.metadata.uid);
        const grace = pod.metadata.deletionGracePeriodSeconds as number | undefined;
        const stopping = runner;
        void (async () => {
          await stopping.stop(grace);
          await this.api.request(`/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}`, { method: 'DELETE', body: { gracePeriodSeconds: 0, preconditions: { uid: pod.metadata.uid } } });
          this.note(`pod ${stopping.key} deleted`);
        })();
        continue;
      }
      await runner.syncStatus().catch(() => undefined);
    }
    for (const [uid, runner] of this.pods) {
      if (!seen.has(uid)) {
        this.pods.delete(uid);
        void runner.stop(0);
      }
    }
    const namespaces = new Set([...this.pods.values()].map((p) => p.namespace));
    for (const ns of namespaces) await this.refreshHosts(ns);
  }

  /** A hostPath PV (a folder here) for every PVC that is pending without a volume, pre-bound to it. */
  private async provisionVolumes(): Promise<void> {
    const pvcs = ok(await this.api.request('/api/v1/persistentvolumeclaims'), 'list PVCs').body as K8sObject;
    for (const pvc of pvcs.items as K8sObject[]) {
      if (pvc.status?.phase !== 'Pending' || (pvc.spec.volumeName ?? '') !== '') continue;
      const name = `pv-${pvc.metadata.uid as string}`;
      const path = join(this.options.dir, 'volumes', `${pvc.metadata.namespace as string}_${pvc.metadata.name as string}`);
      await mkdir(path, { recursive: true, mode: 0o700 });
      await chown(path, this.options.user.uid, this.options.user.gid);
      const res = await this.api.request('/api/v1/persistentvolumes', {
        method: 'POST',
        body: {
          apiVersion: 'v1',
          kind: 'PersistentVolume',
          metadata: { name },
          spec: {
            capacity: { storage: pvc.spec.resources?.requests?.storage ?? '1Gi' },
            accessModes: pvc.spec.accessModes ?? ['ReadWriteOnce'],
            persistentVolumeReclaimPolicy: 'Retain',
            storageClassName: pvc.spec.storageClassName ?? '',
            volumeMode: pvc.spec.volumeMode ?? 'Filesystem',
            hostPath: { path, type: 'Directory' },
            claimRef: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: pvc.metadata.namespace, name: pvc.metadata.name, uid: pvc.metadata.uid },
          },
        },
      });
      if (res.status !== 409) ok(res, `create PV for ${pvc.metadata.namespace as string}/${pvc.metadata.name as string}`);
    }
  }

  private readonly hostsByNamespace = new Map<string, string>();

  /**
   * Service name -> the addresses of its ready endpoints, as /etc/hosts lines (every form of the name a pod may use).
   * The EndpointSlice controller computes the endpoints, but the API refuses loopback addresses in an EndpointSlice
   * ("may not be in the loopback range"), and pod IPs are loopback addresses here: so the kubelet selects the same
   * endpoints as that controller, from each Service's selector and its pods' Ready condition and pod IP.
   */
  private async refreshHosts(namespace: string): Promise<void> {
    const [services, pods] = await Promise.all([this.api.request(`/api/v1/namespaces/${namespace}/services`), this.api.request(`/api/v1/namespaces/${namespace}/pods`)]);
    const podItems = ((ok(pods, 'list pods').body as K8sObject).items ?? []) as K8sObject[];
    const lines: string[] = [];
    for (const svc of ((ok(services, 'list Services').body as K8sObject).items ?? []) as K8sObject[]) {
      const name = svc.metadata.name as string;
      const selector = svc.spec?.selector as Record<string, string> | undefined;
      if (selector === undefined) continue;
      const ips = podItems
        .filter((pod) => Object.entries(selector).every(([k, v]) => pod.metadata.labels?.[k] === v))
        .filter((pod) => pod.metadata.deletionTimestamp === undefined)
        .filter((pod) => svc.spec.publishNotReadyAddresses === true || ((pod.status?.conditions ?? []) as K8sObject[]).some((c) => c.type === 'Ready' && c.status === 'True'))
        .map((pod) => pod.status?.podIP as string | undefined)
        .filter((ip): ip is string => ip !== undefined && ip !== '');
      for (const ip of [...new Set(ips)].sort()) lines.push(`${ip}\t${name} ${name}.${namespace} ${name}.${namespace}.svc ${name}.${namespace}.svc.cluster.local`);
    }
    const text = lines.join('\n');
    if (this.hostsByNamespace.get(namespace) === text) return;
    this.hostsByNamespace.set(namespace, text);
    for (const runner of this.pods.values()) if (runner.namespace === namespace) await this.writeHosts(runner);
  }

  /** Rewritten in place (same inode): the file is bind-mounted as each container's /etc/hosts. */
  async writeHosts(runner: PodRunner): Promise<void> {
    const host = runner.pod.spec.hostname ?? runner.pod.metadata.name;
    const own = runner.pod.spec.subdomain === undefined ? host : `${host} ${host}.${runner.pod.spec.subdomain}.${runner.namespace}.svc.cluster.local`;
    const text = `127.0.0.1\tlocalhost\n::1\tlocalhost\n${runner.ip}\t${own}\n${this.hostsByNamespace.get(runner.namespace) ?? ''}\n`;
    await mkdir(dirname(runner.hostsFile), { recursive: true });
    // O_TRUNC keeps the inode, so the bind mounts see the new content.
    await writeFile(runner.hostsFile, text);
  }

  /** Where a pod's container logs are (for a failing test's message). */
  async podLogs(namespace: string, name: string): Promise<string> {
    const out: string[] = [];
    for (const runner of this.pods.values()) {
      if (runner.namespace !== namespace || runner.pod.metadata.name !== name) continue;
      const dir = join(this.options.dir, 'pods', `${namespace}_${name}_${runner.uid}`, 'logs');
      for (const f of (await readdir(dir).catch(() => [])).sort()) out.push(`--- ${f}\n${await readFile(join(dir, f), 'utf8').catch(() => '')}`);
    }
    return out.join('\n');
  }

  /** A test's fault injection: `signal` to the main process of a running pod's container (see PodRunner.signalMain). */
  signalContainer(namespace: string, pod: string, container: string, signal: NodeJS.Signals, holdRestartMs?: number): number {
    for (const runner of this.pods.values()) if (runner.namespace === namespace && runner.pod.metadata.name === pod && !runner.done) return runner.signalMain(container, signal, holdRestartMs);
    throw new Error(`pod ${namespace}/${pod} does not run on the test kubelet`);
  }

  podIP(namespace: string, name: string): string | undefined {
    for (const runner of this.pods.values()) if (runner.namespace === namespace && runner.pod.metadata.name === name && !runner.done) return runner.ip;
    return undefined;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    await this.exec?.stop();
    await Promise.all([...this.pods.values()].map((p) => p.stop(10)));
    this.pods.clear();
  }
}
