import { freePort } from '../env.js';
import { httpStatus } from '../http-load.js';
import { pollUntil } from '../pg.js';
import type { ProcessRegistry, TrackedProcess } from '../proc.js';

/**
 * The floor for the daemon-only benchmarks (footprint, status endpoint): the smallest possible Node service, a bare
 * `http.createServer` answering a fixed JSON document. pg_ctl leaves no process behind to compare with, and pgim is a
 * Node program, so this is what pgim's own code costs on top of Node itself.
 */
const serverScript = `
const http = require('node:http');
const body = JSON.stringify({ status: 'ok' });
http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

export class NodeFloorServer {
  readonly label = 'floor';

  private constructor(private readonly process: TrackedProcess, readonly url: string) {}

  static async start(processes: ProcessRegistry, logFile: string): Promise<NodeFloorServer> {
    const port = await freePort();
    const child = processes.spawn('node floor server', process.execPath, ['-e', serverScript], {
      asServiceUser: true,
      logFile,
      env: { PORT: String(port) },
    });
    const server = new NodeFloorServer(child, `http://127.0.0.1:${port}/`);
    await pollUntil('the Node floor server', async () => (await httpStatus(server.url)) === 200, 30_000);
    return server;
  }

  get pid(): number {
    return this.process.pid;
  }

  async stop(): Promise<void> {
    await this.process.terminate(5_000);
  }
}
