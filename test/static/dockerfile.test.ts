import { strict as assert } from 'node:assert';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dockerfileProblems, parseStages, rules } from './dockerfile-rules.js';
import { repoRoot } from './paths.js';

describe('static: the Dockerfile (no Docker engine needed)', function () {
  let dockerfile = '';

  before(async () => {
    dockerfile = await readFile(join(repoRoot, 'Dockerfile'), 'utf8');
  });

  for (const rule of rules) {
    it(`${rule.id}: ${rule.title}`, () => {
      const { stages, all } = parseStages(dockerfile);
      assert.deepEqual(rule.check(stages, all), []);
    });
  }

  // Each variant breaks one rule of the real Dockerfile; the check must name that rule.
  const variants: [string, (text: string) => string, string][] = [
    ['USER by name', (t) => t.replace(/^USER .*$/m, 'USER postgres'), 'user'],
    ['USER 0', (t) => t.replace(/^USER .*$/m, 'USER 0'), 'user'],
    ['no USER', (t) => t.replace(/^USER .*$/m, ''), 'user'],
    ['an ADD', (t) => t.replace(/^USER /m, 'ADD https://example.invalid/x.tar.gz /opt/x\nUSER '), 'no-add'],
    ['postgres:latest', (t) => t.replace(/^ARG POSTGRES_IMAGE=\S+/m, 'ARG POSTGRES_IMAGE=postgres:latest'), 'no-latest'],
    ['an unpinned base', (t) => t.replace(/^ARG NODE_IMAGE=\S+/m, 'ARG NODE_IMAGE=node'), 'pinned-base'],
    ['a literal unpinned base', (t) => t.replace(/^FROM \$\{NODE_IMAGE\} AS build/m, 'FROM node AS build'), 'pinned-base'],
    ['a base build argument without a default', (t) => t.replace(/^ARG POSTGRES_IMAGE=\S+/m, 'ARG POSTGRES_IMAGE'), 'pinned-base'],
    ['a base build argument declared after the first FROM', (t) => t.replace(/^ARG NODE_SLIM_IMAGE=\S+\n/m, ''), 'pinned-base'],
    ['a base build argument whose default is a variable', (t) => t.replace(/^ARG NODE_IMAGE=\S+/m, 'ARG NODE_IMAGE=node:${NODE_VERSION}'), 'pinned-base'],
    ['a literal base instead of the build argument', (t) => t.replace(/^FROM \$\{POSTGRES_IMAGE\}$/m, 'FROM postgres:15.14-bookworm'), 'base-args'],
    ['another PostgreSQL major', (t) => t.replace(/^ARG POSTGRES_IMAGE=\S+/m, 'ARG POSTGRES_IMAGE=postgres:16.4-bookworm'), 'postgres-base'],
    ['the base image\'s postgres uid kept', (t) => t.replace(/ && usermod -u 26 -g 26 postgres \\\n/, ''), 'postgres-uid'],
    ['the base image\'s postgres gid kept', (t) => t.replace(/ && groupmod -g 26 postgres \\\n/, ''), 'postgres-uid'],
    ['a shell-form ENTRYPOINT', (t) => t.replace(/^ENTRYPOINT .*$/m, 'ENTRYPOINT pgim run'), 'entrypoint'],
    ['an init wrapper', (t) => t.replace(/^ENTRYPOINT .*$/m, 'ENTRYPOINT ["/usr/bin/tini", "--", "pgim", "run"]'), 'entrypoint'],
    ['a shell-form HEALTHCHECK', (t) => t.replace(/CMD \["node", "-e", .*\]$/m, "CMD node -e \"fetch('http://127.0.0.1:8000/readyz')\""), 'healthcheck'],
    ['apt-get without cleaning', (t) => t.replace(/^USER /m, 'RUN apt-get update && apt-get install -y curl\nUSER '), 'apt'],
    ['apt-get upgrade', (t) => t.replace(/^USER /m, 'RUN apt-get update && apt-get upgrade -y && rm -rf /var/lib/apt/lists/*\nUSER '), 'apt'],
    ['a missing OCI label', (t) => t.replace(/^\s*org\.opencontainers\.image\.revision=.*$/m, ''), 'labels'],
    ['another PGDATA', (t) => t.replace('PGDATA=/var/lib/postgresql/data/pgdata', 'PGDATA=/data'), 'paths'],
    ['a password build argument', (t) => t.replace(/^USER /m, 'ARG DB_PASSWORD=hunter2\nUSER '), 'no-secrets'],
    ['the Secrets folder copied in', (t) => t.replace(/^USER /m, 'COPY .pgim/demo/config/secrets /etc/pgim/secrets\nUSER '), 'no-secrets'],
    ['no STOPSIGNAL', (t) => t.replace(/^STOPSIGNAL .*$/m, ''), 'stopsignal'],
    ['no native addon build', (t) => t.replace(' && scripts/build-native.sh', ''), 'native-addon'],
    ['dev dependencies in the runtime image', (t) => t.replace(/ \\\n && npm prune [^\n]*/, ''), 'multi-stage'],
  ];
  for (const [what, transform, rule] of variants) {
    it(`the check catches ${what} (rule ${rule})`, () => {
      const broken = transform(dockerfile);
      assert.notEqual(broken, dockerfile, 'the variant changed nothing: the Dockerfile no longer has what it replaces');
      const problems = dockerfileProblems(broken);
      assert.ok(problems.some((p) => p.startsWith(`${rule}: `)), `expected a ${rule} problem, got ${JSON.stringify(problems)}`);
    });
  }

  it('.dockerignore keeps the host build, tests, .git and .pgim (generated Secrets) out of the build context', async () => {
    const lines = (await readFile(join(repoRoot, '.dockerignore'), 'utf8')).split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    assert.equal(lines[0], '*', 'an allow-list: everything excluded first');
    const included = lines.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
    for (const path of included) assert.ok(!/^(\.git|\.pgim|node_modules|dist|test)(\/|$)/.test(path), `${path} must stay out of the image`);
    // Everything the build stage copies is in the context.
    for (const copied of ['package.json', 'package-lock.json', 'tsconfig.json', 'cmd', 'src', 'native', 'scripts/build-native.sh', 'scripts/bundle.ts']) {
      assert.ok(included.includes(copied), `${copied} is copied by the Dockerfile but excluded from the context`);
    }
    assert.ok(lines.includes('native/build/'), 'a host build of the addon is not copied');
  });
});
