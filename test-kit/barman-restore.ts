import { execFile } from 'node:child_process';
import { appendFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, handToPostgres, isRoot, postgresUser } from './env.js';
import type { S3Server } from './s3.js';

const run = promisify(execFile);
const pgBin = process.env.PGIM_PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** A tool run as the postgres account when the tests run as root (PostgreSQL refuses root). */
export function asPostgres(command: string, args: string[]): [string, string[]] {
  return isRoot ? ['setpriv', [`--reuid=${postgresUser}`, `--regid=${postgresUser}`, '--init-groups', '--', command, ...args]] : [command, args];
}

export interface RestoredInstance {
  readonly port: number;
  readonly dir: string;
  stop(): Promise<void>;
  log(): Promise<string>;
}

/**
 * Restores the newest backup of `<path>/<serverName>` with Barman Cloud's own tools only (barman-cloud-backup-list,
 * barman-cloud-restore, barman-cloud-wal-restore as restore_command) and starts it with plain pg_ctl on its own
 * port, no archiving, recovering to the end of the archived WAL on the latest timeline, then promoting.
 */
export async function restoreNewestWithBarman(s3: S3Server, path: string, serverName: string, dir: string): Promise<RestoredInstance> {
  const common = ['--endpoint-url', s3.endpointURL, '--cloud-provider', 'aws-s3'];
  const env = s3.barmanEnv();
  const list = JSON.parse((await run('barman-cloud-backup-list', [...common, '--format', 'json', s3.destination(path), serverName], { env })).stdout) as { backups_list: { backup_id: string }[] };
  const newest = list.backups_list.at(-1);
  if (newest === undefined) throw new Error('no backup to restore');
  await run('barman-cloud-restore', [...common, s3.destination(path), serverName, newest.backup_id, dir], { env });
  const port = await freePort();
  const restoreCommand = `barman-cloud-wal-restore ${common.join(' ')} ${s3.destination(path)} ${serverName} %f %p`;
  await appendFile(
    join(dir, 'postgresql.auto.conf'),
    [
      `port = ${port}`, "listen_addresses = '127.0.0.1'", `unix_socket_directories = '${dir}'`, "archive_mode = 'off'",
      "logging_collector = 'off'", "log_destination = 'stderr'", "ssl = 'off'", `restore_command = '${restoreCommand}'`,
      "recovery_target_timeline = 'latest'", "recovery_target_action = 'promote'", "primary_conninfo = ''",
    ].join('\n').concat('\n'),
  );
  await writeFile(join(dir, 'recovery.signal'), '');
  await rm(join(dir, 'standby.signal'), { force: true });
  await handToPostgres(dir);
  const logFile = join(dir, 'restored.log');
  const [cmd, args] = asPostgres(join(pgBin, 'pg_ctl'), ['-D', dir, '-l', logFile, '-w', '-t', '300', 'start']);
  await run(cmd, args, { env });
  return {
    port,
    dir,
    stop: async () => {
      const [stopCmd, stopArgs] = asPostgres(join(pgBin, 'pg_ctl'), ['-D', dir, '-m', 'fast', '-w', 'stop']);
      await run(stopCmd, stopArgs).catch(() => undefined);
    },
    log: async () => (await import('node:fs/promises')).readFile(logFile, 'utf8'),
  };
}
