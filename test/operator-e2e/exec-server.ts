import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

/** Where an exec runs: the container's main process (its mount namespace and root), as its user, with its env. */
export interface ExecTarget {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
  readonly env: Record<string, string>;
}

/** Kubernetes' streaming sub-protocols over WebSocket (k8s.io/streaming wsstream): one byte of channel per message. */
const protocols = ['v5.channel.k8s.io', 'v4.channel.k8s.io'];
const stdoutChannel = 1;
const stderrChannel = 2;
const errorChannel = 3;

function frame(channel: number, data: Buffer | string): Buffer {
  return Buffer.concat([Buffer.from([channel]), Buffer.isBuffer(data) ? data : Buffer.from(data)]);
}

/** The v4/v5 error channel's last message: a metav1.Status (exit code 0: Success). */
function exitStatus(code: number): string {
  if (code === 0) return JSON.stringify({ metadata: {}, status: 'Success' });
  return JSON.stringify({
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: exit status ${code}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(code) }] },
  });
}

/**
 * The kubelet's streaming server, exec only (what CNPG's operator uses: `/controller/manager backup <name>` in the
 * postgres container). HTTPS with a certificate the API server trusts (`--kubelet-certificate-authority`); the Node
 * declares `ExtendWebSocketsToKubelet`, so the API server proxies the client's WebSocket (v5.channel.k8s.io) here as
 * it is, instead of translating it to SPDY. No stdin, no TTY, no attach or port-forward.
 */
export class ExecServer {
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(tls: { certFile: string; keyFile: string }, resolve: (namespace: string, pod: string, container: string) => ExecTarget | undefined, note: (line: string) => void): Promise<ExecServer> {
    const server = createServer({ cert: await readFile(tls.certFile), key: await readFile(tls.keyFile), minVersion: 'TLSv1.2' }, (_req, res) => {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('the test kubelet serves exec over WebSocket only\n');
    });
    const wss = new WebSocketServer({ noServer: true, handleProtocols: (offered) => protocols.find((p) => offered.has(p)) ?? false });
    server.on('upgrade', (req, socket, head) => {
      const url = new URL(req.url ?? '/', 'https://kubelet');
      const [kind, namespace, pod, container] = url.pathname.split('/').filter(Boolean);
      const target = kind === 'exec' && namespace !== undefined && pod !== undefined && container !== undefined ? resolve(namespace, pod, container) : undefined;
      if (target === undefined || url.searchParams.get('tty') === 'true' || url.searchParams.get('input') === 'true') {
        socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      const command = url.searchParams.getAll('command');
      wss.handleUpgrade(req, socket, head, (ws) => {
        note(`exec in ${namespace}/${pod}/${container}: ${command.join(' ')}`);
        run(ws, target, command, note);
      });
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    return new ExecServer(server, (server.address() as AddressInfo).port);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((ok) => this.server.close(() => { ok(); }));
  }
}

function run(ws: WebSocket, target: ExecTarget, command: string[], note: (line: string) => void): void {
  // Into the container's mount namespace and root (its chroot), in its working folder, as its user.
  const child = spawn('nsenter', [`--target=${target.pid}`, '--mount', '--root', '--wd', `--setuid=${target.uid}`, `--setgid=${target.gid}`, '--', ...command], {
    env: target.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (chunk: Buffer) => { ws.send(frame(stdoutChannel, chunk)); });
  child.stderr.on('data', (chunk: Buffer) => { ws.send(frame(stderrChannel, chunk)); });
  ws.on('close', () => child.kill('SIGKILL'));
  child.on('error', (err) => {
    ws.send(frame(errorChannel, JSON.stringify({ metadata: {}, status: 'Failure', message: err.message, reason: 'InternalError' })));
    ws.close(1000);
  });
  child.on('close', (code) => {
    note(`exec exited with ${String(code)}: ${command.join(' ')}`);
    ws.send(frame(errorChannel, exitStatus(code ?? 1)));
    ws.close(1000);
  });
}
