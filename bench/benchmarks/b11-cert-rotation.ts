import { join } from 'node:path';
import { removeTempDir, serviceDirectory } from '../env.js';
import { pollUntil } from '../pg.js';
import { CnpgSystem } from '../systems/cnpg.js';
import { FloorSystem } from '../systems/floor.js';
import { PatroniSystem } from '../systems/patroni.js';
import { PgimK8sSystem } from '../systems/pgim-k8s.js';
import { PgimSystem } from '../systems/pgim.js';
import type { DatabaseSystem, SystemKind } from '../systems/types.js';
import { BenchCertificates, opensslServedSerial, ProjectedSecretFolder, servedSerial, writeSecretFolder, type ServerPair } from '../tls.js';
import { initialiseAll, interleave, randomPause, since, startReadWrite, withSystems } from './common.js';
import type { BenchContext, Benchmark } from './types.js';

const servedMetric = 'server cert replaced -> new serial served';

/** Until a new connection's TLS handshake shows `serial`; resolves with that time. */
function waitServed(system: DatabaseSystem, ca: string, serial: string, timeoutMs: number): Promise<number> {
  return pollUntil(`${system.label}: certificate ${serial} served`, async () => (await servedSerial(system.login.port, ca, 1_000, system.login.host)) === serial, timeoutMs);
}

/** Like `waitServed`, but undefined when nothing showed it within `timeoutMs` (a result, not a failure). */
function whenServed(system: DatabaseSystem, ca: string, serial: string, timeoutMs: number): Promise<number | undefined> {
  return waitServed(system, ca, serial, timeoutMs).then(
    (at) => at,
    () => undefined,
  );
}

/** What the plan's own check, `openssl s_client -starttls postgres`, sees now must be `serial` too (off the clock). */
async function confirmWithOpenssl(context: BenchContext, system: DatabaseSystem, serial: string): Promise<void> {
  const seen = await opensslServedSerial(context.systems.processes, system.login.port, system.login.host);
  if (seen !== serial) throw new Error(`${system.label}: the handshake poll saw serial ${serial}, openssl s_client sees ${seen}`);
}

/** The operator's step after replacing the files, for the systems that need one: SIGHUP through their own tool. */
async function manualReload(system: DatabaseSystem): Promise<void> {
  if (system instanceof FloorSystem || system instanceof PatroniSystem) {
    await system.reload();
    return;
  }
  throw new Error(`${system.label}: no manual reload to measure`);
}

export const certRotationBenchmark: Benchmark = {
  id: 'B11',
  title: 'Server certificate replaced -> new certificate served',
  measures:
    'Every system serves TLS (1.3, as pgim renders it) with a server certificate from one CA made by the code of ' +
    '`pgim certs`. Per run a new server certificate and key from the same CA replace the old ones in one atomic step, ' +
    'a `..data` symlink renamed over (the way the kubelet updates a mounted Secret): for pgim in its `<cluster>-server` ' +
    'Secret folder (files mode); for pgim-k8s its `<cluster>-server` Secret is updated in the API server; for cnpg too ' +
    '(its own CA, the certificate names its pod IP); for the floor and Patroni in the folder their `ssl_cert_file`/`ssl_key_file` point ' +
    'into, after a random pause of 0-10 s (0-2 s with --quick; a random phase of Patroni\'s HA loop and pgim\'s ' +
    'safety poll). From that rename until a new connection\'s TLS handshake (SSLRequest, then a handshake verified against ' +
    'the CA, 10 ms poll) shows the new serial; `openssl s_client -starttls postgres` confirms it afterwards. pgim gets ' +
    'the file change only; the floor and Patroni first get the file change only too, watched for 10 s (2 s with ' +
    '--quick; "no reload: not served" counts the runs where nothing was served), then a second new certificate ' +
    'followed at once by their operator\'s reload: `pg_ctl reload` for the floor, `POST /reload` for Patroni (acted on ' +
    'in its next HA loop).',
  async run(context, recorder) {
    const windowMs = context.quick ? 2_000 : 10_000;
    /** Patroni's loop_wait and pgim's safety poll period (shorter with --quick). */
    const phaseMs = context.quick ? 2_000 : 10_000;
    const dir = await serviceDirectory(join(context.systems.workDir, 'b11-tls'), 0o755);
    try {
      const certs = await BenchCertificates.create(join(dir, 'ca'), 'bench');
      const initial = await certs.serverPair();
      const keys = (pair: ServerPair): Record<string, string> => ({ 'tls.crt': pair.cert, 'tls.key': pair.key });
      // The floor's and Patroni's certificate folders exist before their PostgreSQL first starts with ssl = on.
      const plainFolders = new Map<SystemKind, ProjectedSecretFolder>();
      for (const kind of context.kinds) {
        if (kind === 'floor' || kind === 'patroni') plainFolders.set(kind, await ProjectedSecretFolder.create(join(dir, kind), keys(initial)));
      }
      const parametersFor = (kind: SystemKind): Record<string, string> => {
        const folder = plainFolders.get(kind);
        return folder === undefined ? {} : { ssl: 'on', ssl_cert_file: folder.path('tls.crt'), ssl_key_file: folder.path('tls.key') };
      };
      await withSystems(context, async (systems) => {
        const folders = new Map<DatabaseSystem, ProjectedSecretFolder>();
        /** CloudNativePG's manager is on its pod IP: its own CA and certificates naming that address. */
        const ownCerts = new Map<DatabaseSystem, BenchCertificates>();
        for (const system of systems) {
          if (system instanceof CnpgSystem) {
            const own = await BenchCertificates.create(join(dir, 'cnpg'), 'bench', [system.login.host ?? '127.0.0.1']);
            ownCerts.set(system, own);
            await system.installCertificates(own.caCert, await own.caKey(), await own.serverPair());
          } else if (system instanceof PgimK8sSystem) {
            // CNPG's three TLS Secrets in the API server, by their default names.
            await system.installCertificates(certs.caCert, await certs.replicationPair(), initial);
          } else if (system instanceof PgimSystem) {
            // CNPG's three TLS Secrets; the server one laid out as a projected volume so it can be swapped atomically.
            await writeSecretFolder(system.secretDir('ca'), { 'ca.crt': certs.caCert });
            const replication = await certs.replicationPair();
            await writeSecretFolder(system.secretDir('replication'), { 'tls.crt': replication.cert, 'tls.key': replication.key });
            folders.set(system, await ProjectedSecretFolder.create(system.secretDir('server'), keys(initial)));
          } else {
            const folder = plainFolders.get(system.kind);
            if (folder === undefined) throw new Error(`${system.label}: no certificate folder`);
            folders.set(system, folder);
          }
        }
        await initialiseAll(context, systems);
        try {
          for (const system of systems) {
            await startReadWrite(system);
            const own = ownCerts.get(system) ?? certs;
            const expected = (await own.serverPair()).serial;
            const serial = await servedSerial(system.login.port, own.caCert, 1_000, system.login.host);
            if (serial !== expected) throw new Error(`${system.label} serves serial ${serial}, not the installed ${expected}`);
          }
          await interleave(context, systems, async (system, run) => {
            const own = ownCerts.get(system) ?? certs;
            const folder = folders.get(system);
            /** Writes the new pair where the system reads it, off the clock; the returned step makes it visible. */
            const stage = async (pair: ServerPair): Promise<() => Promise<void>> => {
              // cnpg and pgim-k8s: the Secret in the API server is updated (what the operator or cert-manager does on renewal).
              if (system instanceof CnpgSystem || system instanceof PgimK8sSystem) return () => system.replaceServerCertificate(pair);
              if (folder === undefined) throw new Error(`${system.label}: no certificate folder`);
              return folder.stage(keys(pair));
            };
            /**
             * A new pair from the same CA, staged off the clock, then a random pause (a random phase of any daemon
             * loop: Patroni acts on POST /reload only in its next HA loop, pgim's safety poll runs every 10 s); resolves
             * after the atomic swap, with its time.
             */
            const replace = async (step: string): Promise<{ pair: ServerPair; t0: number }> => {
              const pair = await own.newServerPair();
              const swap = await stage(pair);
              const pauseMs = await randomPause(phaseMs);
              recorder.add(system.label, `random pause before the change (${step})`, run, pauseMs, 'ms', { detail: true });
              const t0 = performance.now();
              await swap();
              return { pair, t0 };
            };

            // The file change alone: pgim acts on it; PostgreSQL itself never re-reads its certificate unprompted.
            const alone = await replace('no reload');
            const aloneServed = await whenServed(system, own.caCert, alone.pair.serial, windowMs);
            // Recorded after the served time, so the table lists that first for every system.
            const recordAlone = (): void => {
              recorder.add(system.label, `no reload: new serial not served (after ${windowMs / 1000} s)`, run, aloneServed === undefined ? 1 : 0, 'count');
            };
            if (system instanceof PgimSystem || system instanceof PgimK8sSystem || system instanceof CnpgSystem) {
              if (aloneServed !== undefined) recorder.add(system.label, servedMetric, run, since(alone.t0, aloneServed), 'ms');
              // Late is a result (counted below); never is a failure. Either way the next run starts from a served certificate.
              else await waitServed(system, own.caCert, alone.pair.serial, 60_000);
              recordAlone();
              await confirmWithOpenssl(context, system, alone.pair.serial);
              return;
            }

            // The floor and Patroni: a fresh certificate, then at once the reload their operator has to issue.
            const manual = await replace('with a reload');
            await manualReload(system);
            // Patroni acts on POST /reload in its next HA loop: up to loop_wait (10 s) later.
            const served = await waitServed(system, certs.caCert, manual.pair.serial, 30_000);
            recorder.add(system.label, servedMetric, run, since(manual.t0, served), 'ms');
            recordAlone();
            await confirmWithOpenssl(context, system, manual.pair.serial);
          });
        } finally {
          for (const system of systems) await system.stop().catch(() => undefined);
        }
      }, context.kinds, parametersFor);
    } finally {
      await removeTempDir(dir);
    }
  },
};
