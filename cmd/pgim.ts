#!/usr/bin/env node
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { initCommand, renderCommand, runCommand } from '../src/daemon/run.js';
import { ExitCode } from '../src/errors/index.js';
import type { InstanceOptions } from '../src/options/index.js';
import { findPgBinDir } from '../src/postgres/binaries.js';
import { fetchStatus, formatStatus } from '../src/status/client.js';

const instanceFlags = {
  'config-dir': { type: 'string', env: 'PGIM_CONFIG_DIR', help: 'config folder: cluster.yaml, secrets/, configmaps/' },
  pgdata: { type: 'string', env: 'PGDATA', help: 'PostgreSQL data directory' },
  'pod-name': { type: 'string', env: 'POD_NAME', help: 'this instance\'s name (default <cluster>-1)' },
  'runtime-dir': { type: 'string', env: 'PGIM_RUNTIME_DIR', help: 'sockets, logs, certificates (default /controller)' },
  'pg-port': { type: 'string', env: 'PGPORT', help: 'PostgreSQL port (default 5432)' },
  'status-port': { type: 'string', env: 'PGIM_STATUS_PORT', help: 'status API port (default 8000)' },
  'metrics-port': { type: 'string', env: 'PGIM_METRICS_PORT', help: 'Prometheus metrics port (default 9187)' },
  'listen-address': { type: 'string', env: 'PGIM_LISTEN_ADDRESS', help: 'address(es) to listen on (default *)' },
  user: { type: 'string', env: 'PGIM_USER', help: 'OS user postgres runs as when pgim starts as root (default postgres)' },
  'on-postgres-exit': { type: 'string', env: 'PGIM_ON_POSTGRES_EXIT', help: 'restart|exit after a postmaster crash (default restart)' },
} as const;

interface FlagSpec {
  type: 'string' | 'boolean';
  env?: string;
  help: string;
}

const commands: Record<string, { summary: string; flags: Record<string, FlagSpec> }> = {
  run: { summary: 'bootstrap if needed, then run and supervise PostgreSQL', flags: instanceFlags },
  init: { summary: 'initdb and bootstrap an empty PGDATA, then exit', flags: instanceFlags },
  render: {
    summary: 'write every rendered file into --out, start nothing',
    flags: { ...instanceFlags, out: { type: 'string', help: 'folder to write the rendered files to' } },
  },
  status: {
    summary: 'show the status of a running instance',
    flags: {
      url: { type: 'string', help: 'status URL (default http://127.0.0.1:$PGIM_STATUS_PORT/pg/status)' },
      json: { type: 'boolean', help: 'print the raw JSON document' },
    },
  },
};

class UsageError extends Error {}

function usage(command?: string): string {
  if (command === undefined || !(command in commands)) {
    const list = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`);
    return ['Usage: pgim <command> [flags]', '', 'Commands:', ...list, '', 'Run `pgim <command> --help` for its flags.'].join('\n');
  }
  const spec = commands[command];
  const lines = Object.entries(spec?.flags ?? {}).map(([name, flag]) => {
    const env = flag.env === undefined ? '' : ` [$${flag.env}]`;
    return `  --${name.padEnd(18)} ${flag.help}${env}`;
  });
  return [`Usage: pgim ${command} [flags]`, '', spec?.summary ?? '', '', 'Flags:', ...lines, '  --help               show this help'].join('\n');
}

type Values = Record<string, string | boolean | undefined>;

function parse(command: string, argv: string[]): Values {
  const spec = commands[command];
  if (!spec) throw new UsageError(`unknown command "${command}"`);
  const options: ParseArgsConfig['options'] = { help: { type: 'boolean' } };
  for (const [name, flag] of Object.entries(spec.flags)) options[name] = { type: flag.type };
  let values: Values;
  try {
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as Values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  for (const [name, flag] of Object.entries(spec.flags)) {
    if (values[name] === undefined && flag.env !== undefined && process.env[flag.env] !== undefined) {
      values[name] = process.env[flag.env];
    }
  }
  return values;
}

function port(values: Values, name: string, fallback: number): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new UsageError(`--${name}: "${String(raw)}" is not a port number`);
  return n;
}

function required(values: Values, name: string): string {
  const raw = values[name];
  if (typeof raw !== 'string' || raw === '') {
    const env = (instanceFlags as Record<string, FlagSpec>)[name]?.env;
    throw new UsageError(`--${name} is required${env === undefined ? '' : ` (or set ${env})`}`);
  }
  return raw;
}

function instanceOptions(values: Values): InstanceOptions {
  const onExit = values['on-postgres-exit'] ?? 'restart';
  if (onExit !== 'restart' && onExit !== 'exit') throw new UsageError('--on-postgres-exit must be restart or exit');
  const str = (name: string, fallback: string): string => (typeof values[name] === 'string' ? values[name] : fallback);
  const podName = values['pod-name'];
  return {
    configDir: required(values, 'config-dir'),
    pgdata: required(values, 'pgdata'),
    podName: typeof podName === 'string' && podName !== '' ? podName : undefined,
    runtimeDir: str('runtime-dir', '/controller'),
    pgPort: port(values, 'pg-port', 5432),
    statusPort: port(values, 'status-port', 8000),
    metricsPort: port(values, 'metrics-port', 9187),
    listenAddress: str('listen-address', '*'),
    user: str('user', 'postgres'),
    onPostgresExit: onExit,
    pgBinDir: findPgBinDir(),
  };
}

async function status(values: Values): Promise<number> {
  const url = typeof values.url === 'string' ? values.url : `http://127.0.0.1:${port({ p: process.env.PGIM_STATUS_PORT }, 'p', 8000)}/pg/status`;
  let response;
  try {
    response = await fetchStatus(url);
  } catch (err) {
    process.stderr.write(`pgim status: cannot reach ${url}: ${(err as Error).message}\n`);
    return ExitCode.failure;
  }
  if (values.json === true) process.stdout.write(`${response.raw}\n`);
  else if (response.document) process.stdout.write(`${formatStatus(response.document)}\n`);
  else process.stdout.write(`HTTP ${response.httpStatus}: ${response.raw}\n`);
  return response.httpStatus === 200 ? ExitCode.ok : ExitCode.failure;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${usage()}\n`);
    return command === undefined ? ExitCode.usage : ExitCode.ok;
  }
  try {
    const values = parse(command, rest);
    if (values.help === true) {
      process.stdout.write(`${usage(command)}\n`);
      return ExitCode.ok;
    }
    switch (command) {
      case 'run':
        return await runCommand(instanceOptions(values));
      case 'init':
        return await initCommand(instanceOptions(values));
      case 'render':
        return await renderCommand(instanceOptions(values), required(values, 'out'));
      default:
        return await status(values);
    }
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`pgim ${command}: ${err.message}\n\n${usage(command)}\n`);
    return ExitCode.usage;
  }
}

process.exitCode = await main(process.argv.slice(2));
