/**
 * `npm run bench [-- --only B1,B6 --runs 9 --systems floor,pgim --quick]`: pgim vs bare PostgreSQL vs Patroni.
 * Writes bench/results/<date>[-<selection>].{json,md,svg} and prints the table.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { benchmarkIds, type BenchmarkId } from './benchmarks/types.js';
import { BenchSession, packageRoot, type BenchOptions, type BenchResult } from './harness.js';
import { runUnderReaper } from './reaper.js';
import { evaluateGoals, goalsTable, renderMarkdown, renderSvg, resultsTable, summarise } from './report.js';
import { allSystemKinds, type SystemKind } from './systems/types.js';

const usage = `usage: npm run bench -- [options]
  --only B1,B6          benchmarks to run (default: all of ${benchmarkIds.join(', ')})
  --runs N              measured runs per benchmark (default 5), after one warm-up
  --systems a,b         systems to compare (default: ${allSystemKinds.join(',')})
  --quick               short idle/load windows (also BENCH_QUICK=1); figures only indicative
  --no-warmup           skip the warm-up run
  --no-install          never apt-get install Patroni/etcd (skip Patroni when missing)
  --out DIR             results folder (default bench/results)`;

function listOf<T extends string>(value: string | undefined, allowed: readonly T[], what: string): T[] {
  if (value === undefined) return [];
  return value.split(',').map((raw) => {
    const item = raw.trim();
    const match = allowed.find((a) => a.toLowerCase() === item.toLowerCase());
    if (match === undefined) throw new Error(`unknown ${what} "${item}" (one of ${allowed.join(', ')})`);
    return match;
  });
}

interface CliOptions extends BenchOptions {
  outDir: string;
  /** Part of the file names when the run is not the full default one, so it never overwrites the day's full results. */
  tag: string;
}

function parseCli(argv: readonly string[]): CliOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      only: { type: 'string' },
      runs: { type: 'string' },
      systems: { type: 'string' },
      quick: { type: 'boolean' },
      'no-warmup': { type: 'boolean' },
      'no-install': { type: 'boolean' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    console.log(usage);
    process.exit(0);
  }
  const runs = values.runs === undefined ? 5 : Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');
  const only: BenchmarkId[] = listOf(values.only, benchmarkIds, 'benchmark');
  const chosen: SystemKind[] = listOf(values.systems, allSystemKinds, 'system');
  const systems = chosen.length === 0 ? [...allSystemKinds] : allSystemKinds.filter((k) => chosen.includes(k));
  const quick = values.quick === true || process.env.BENCH_QUICK === '1';
  const tagParts = [
    ...(only.length > 0 ? [only.join('-')] : []),
    ...(systems.length < allSystemKinds.length ? [systems.join('-')] : []),
    ...(quick ? ['quick'] : []),
  ];
  return {
    only,
    runs,
    systems,
    warmup: values['no-warmup'] !== true,
    quick,
    install: values['no-install'] !== true,
    log: (line) => {
      console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`);
    },
    outDir: values.out ?? join(packageRoot, 'bench', 'results'),
    tag: tagParts.length > 0 ? `-${tagParts.join('-')}` : '',
  };
}

async function writeResults(result: BenchResult, options: CliOptions, command: string): Promise<string> {
  await mkdir(options.outDir, { recursive: true });
  const base = join(options.outDir, `${result.startedAt.slice(0, 10)}${options.tag}`);
  const rows = summarise(result.samples);
  const json = { ...result, command, summary: rows, goals: evaluateGoals(rows) };
  await writeFile(`${base}.json`, `${JSON.stringify(json, null, 2)}\n`);
  await writeFile(`${base}.md`, renderMarkdown(result, command));
  await writeFile(`${base}.svg`, renderSvg(result));
  return base;
}

async function main(): Promise<number> {
  let options: CliOptions;
  try {
    options = parseCli(process.argv.slice(2));
  } catch (err) {
    console.error(`${err instanceof Error ? err.message : String(err)}\n${usage}`);
    return 2;
  }
  const exitCodeUnderReaper = await runUnderReaper(options.log);
  if (exitCodeUnderReaper !== undefined) return exitCodeUnderReaper;
  const command = ['npm run bench', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' ');
  const session = new BenchSession(options);
  // Ctrl-C or a SIGTERM: stop everything the session started and remove its folders before exiting.
  const onSignal = (signal: NodeJS.Signals): void => {
    options.log(`${signal}: stopping everything the benchmark started`);
    void session.cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
  // A bug must not leave PostgreSQL, Patroni or etcd running either.
  const onFatal = (err: unknown): void => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    void session.cleanup().finally(() => process.exit(1));
  };
  process.on('uncaughtException', onFatal).on('unhandledRejection', onFatal);
  let result: BenchResult;
  try {
    result = await session.execute();
  } finally {
    await session.cleanup();
  }
  const base = await writeResults(result, options, command);
  const rows = summarise(result.samples);
  console.log(`\n${resultsTable(rows)}\n\n${goalsTable(evaluateGoals(rows))}\n`);
  for (const failure of result.failures) console.log(`FAILED ${failure.benchmark}: ${failure.error}`);
  console.log(`results: ${base}.json, ${base}.md, ${base}.svg`);
  return result.failures.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  },
);
