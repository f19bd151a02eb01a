import { join } from 'node:path';
import { freePort, serviceDirectory } from '../env.js';
import { pollUntil } from '../pg.js';
import type { ProcessRegistry, TrackedProcess } from '../proc.js';

/** A single-member etcd on 127.0.0.1 for Patroni's DCS (Debian's etcd-server), on free ports. */
export class EtcdServer {
  private constructor(readonly clientUrl: string, private readonly process: TrackedProcess, readonly logFile: string) {}

  static async start(processes: ProcessRegistry, workDir: string): Promise<EtcdServer> {
    const clientUrl = `http://127.0.0.1:${await freePort()}`;
    const peerUrl = `http://127.0.0.1:${await freePort()}`;
    const dataDir = await serviceDirectory(join(workDir, 'etcd'));
    const logFile = join(workDir, 'etcd.log');
    const child = processes.spawn(
      'etcd',
      'etcd',
      [
        '--name', 'bench',
        '--data-dir', join(dataDir, 'data'),
        '--listen-client-urls', clientUrl,
        '--advertise-client-urls', clientUrl,
        '--listen-peer-urls', peerUrl,
        '--initial-advertise-peer-urls', peerUrl,
        '--initial-cluster', `bench=${peerUrl}`,
        '--initial-cluster-state', 'new',
      ],
      { asServiceUser: true, logFile, stopLast: true },
    );
    const server = new EtcdServer(clientUrl, child, logFile);
    try {
      await pollUntil('etcd /health', async () => {
        if (!child.running) throw new Error(`etcd exited; see ${logFile}`);
        const res = await fetch(`${clientUrl}/health`);
        return res.ok;
      }, 30_000);
    } catch (err) {
      await child.terminate(5_000);
      throw err;
    }
    return server;
  }

  /** host:port, as Patroni's `etcd3.host` wants it. */
  get hostPort(): string {
    return this.clientUrl.replace(/^http:\/\//, '');
  }

  async stop(): Promise<void> {
    await this.process.terminate(10_000);
  }
}
