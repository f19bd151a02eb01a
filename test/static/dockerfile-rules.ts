/**
 * pgim's own Dockerfile rules, checked statically (no Docker engine needed): what Dockle and hadolint would check on
 * an image, plus what pgim's image must be (PID 1, uid 26, CloudNativePG's paths). Used by dockerfile.test.ts on the
 * real Dockerfile, and on broken variants to prove each rule fires.
 */
import { DockerfileParser, type Instruction } from 'dockerfile-ast';

export interface Stage {
  /** `FROM` image with a build argument replaced by its default (`node:20`, or an earlier stage's name). */
  image: string;
  /** `FROM` image as written (`${NODE_IMAGE}`). */
  written: string;
  name: string | undefined;
  instructions: Instruction[];
}

export interface Rule {
  id: string;
  title: string;
  check(stages: Stage[], all: Instruction[]): string[];
}

const keyword = (stage: Stage | undefined, word: string): Instruction[] => (stage?.instructions ?? []).filter((i) => i.getKeyword() === word);
/** An instruction's text after its keyword, flags included, line continuations joined. */
const body = (i: Instruction): string => i.toString().replace(/\\\r?\n/g, ' ').replace(/^\s*\S+\s*/, '');
const line = (i: Instruction): number => i.getRange().start.line + 1;

/** `ARG NAME=default` declarations before the first FROM (the only ones a FROM can use): name to default. */
export function globalArgs(all: Instruction[]): Map<string, string | undefined> {
  const args = new Map<string, string | undefined>();
  for (const instruction of all) {
    if (instruction.getKeyword() === 'FROM') break;
    if (instruction.getKeyword() !== 'ARG') continue;
    const text = body(instruction).trim();
    const equals = text.indexOf('=');
    if (equals < 0) args.set(text, undefined);
    else args.set(text.slice(0, equals), text.slice(equals + 1).replace(/^"(.*)"$/, '$1'));
  }
  return args;
}

/** `${NAME}` or `$NAME`, the whole reference: the build argument's name. */
const argReference = (image: string): string | undefined => /^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$/.exec(image)?.[1];

/** Splits a Dockerfile into its build stages (instructions before the first FROM are global ARGs). */
export function parseStages(text: string): { stages: Stage[]; all: Instruction[] } {
  const all = DockerfileParser.parse(text).getInstructions();
  const args = globalArgs(all);
  const stages: Stage[] = [];
  for (const instruction of all) {
    if (instruction.getKeyword() === 'FROM') {
      const [written = '', as, name] = instruction.getArguments().map((a) => a.getValue());
      const arg = argReference(written);
      const image = arg === undefined ? written : (args.get(arg) ?? written);
      stages.push({ image, written, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return { stages, all };
}

/** `["a", "b"]` (exec form) as an array; undefined for the shell form. */
export function execForm(text: string): string[] | undefined {
  const trimmed = text.trim();
  if (!trimmed.startsWith('[')) return undefined;
  try {
    const parsed: unknown = JSON.parse(trimmed);
    return Array.isArray(parsed) && parsed.every((x) => typeof x === 'string') ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** `name=value` pairs of LABEL or ENV instructions (both `k=v` and the legacy `k v` form). */
function properties(instructions: Instruction[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const i of instructions) {
    if ('getProperties' in i && typeof i.getProperties === 'function') {
      for (const p of (i as Instruction & { getProperties(): { getName(): string; getValue(): string | null }[] }).getProperties()) {
        out.set(p.getName(), p.getValue() ?? '');
      }
    }
  }
  return out;
}

/** Whether a FROM names an earlier stage rather than an image. */
const isStageReference = (stages: Stage[], index: number): boolean =>
  stages.slice(0, index).some((s) => s.name?.toLowerCase() === stages[index]?.image.toLowerCase());

/** `image[:tag][@digest]` split; a stage reference is not an image. */
function imageRef(ref: string): { name: string; tag: string | undefined; digest: string | undefined } {
  const [withoutDigest = '', digest] = ref.split('@');
  const slash = withoutDigest.lastIndexOf('/');
  const colon = withoutDigest.lastIndexOf(':');
  return colon > slash
    ? { name: withoutDigest.slice(0, colon), tag: withoutDigest.slice(colon + 1), digest }
    : { name: withoutDigest, tag: undefined, digest };
}

const final = (stages: Stage[]): Stage | undefined => stages.at(-1);

export const REQUIRED_OCI_LABELS = ['title', 'description', 'version', 'revision', 'licenses', 'base.name'].map((k) => `org.opencontainers.image.${k}`);

export const rules: Rule[] = [
  {
    id: 'multi-stage',
    title: 'a build stage with the dev dependencies, a runtime stage with production dependencies only',
    check(stages) {
      const problems: string[] = [];
      const runtime = final(stages);
      if (stages.length < 2 || !runtime) return ['needs a build stage and a runtime stage'];
      const builders = stages.slice(0, -1);
      const build = builders.find((s) => keyword(s, 'RUN').some((r) => /\bnpm ci\b/.test(body(r)) && !/--omit[= ]dev/.test(body(r))));
      if (!build) problems.push('no earlier stage runs `npm ci` with the dev dependencies');
      else if (!keyword(build, 'RUN').some((r) => /\bnpm prune\b[^&;]*--omit[= ]dev/.test(body(r)))) problems.push('the build stage never prunes to production dependencies (`npm prune --omit=dev`)');
      for (const r of keyword(runtime, 'RUN')) if (/\bnpm (ci|install|i)\b/.test(body(r))) problems.push(`line ${line(r)}: the runtime stage installs npm packages itself`);
      const modules = keyword(runtime, 'COPY').find((c) => /node_modules/.test(body(c)));
      if (!modules || !/--from=\S+/.test(body(modules))) problems.push('node_modules must come from the build stage (COPY --from=build)');
      return problems;
    },
  },
  {
    id: 'native-addon',
    title: 'the build stage compiles the native addon (scripts/build-native.sh) and the runtime stage copies it',
    check(stages) {
      const builders = stages.slice(0, -1);
      const problems: string[] = [];
      if (!builders.some((s) => keyword(s, 'RUN').some((r) => body(r).includes('scripts/build-native.sh')))) problems.push('no build stage runs scripts/build-native.sh');
      if (!keyword(final(stages), 'COPY').some((c) => /--from=\S+/.test(body(c)) && body(c).includes('native/build'))) problems.push('the runtime stage does not copy native/build from the build stage');
      return problems;
    },
  },
  {
    id: 'pinned-base',
    title: 'every base image is pinned by version (a tag with a version number, or a digest), literally or as the default of a build argument',
    check(stages, all) {
      const problems: string[] = [];
      const args = globalArgs(all);
      for (const [index, stage] of stages.entries()) {
        if (isStageReference(stages, index)) continue;
        const arg = argReference(stage.written);
        if (arg !== undefined && args.get(arg) === undefined) {
          problems.push(`FROM ${stage.written}: ${args.has(arg) ? 'the build argument has no default' : 'no ARG before the first FROM declares it'}: the image would depend on the caller`);
          continue;
        }
        if (stage.image.includes('$')) {
          problems.push(`FROM ${stage.written}: a variable in the image name hides the version from review and from this check`);
          continue;
        }
        const { tag, digest } = imageRef(stage.image);
        if (digest !== undefined && /^sha256:[0-9a-f]{64}$/.test(digest)) continue;
        if (tag === undefined || !/\d/.test(tag) || /latest/i.test(tag)) problems.push(`FROM ${stage.written}${stage.written === stage.image ? '' : ` (default ${stage.image})`}: not pinned to a version`);
      }
      return problems;
    },
  },
  {
    id: 'base-args',
    title: 'the bases are the build arguments NODE_IMAGE, NODE_SLIM_IMAGE and POSTGRES_IMAGE (scripts/image.sh passes local stand-ins)',
    check(stages) {
      const expected = ['${NODE_IMAGE}', '${NODE_SLIM_IMAGE}', '${POSTGRES_IMAGE}'];
      const images = stages.filter((_, index) => !isStageReference(stages, index)).map((s) => s.written);
      return expected.filter((e) => !images.includes(e)).map((e) => `no stage is FROM ${e}`).concat(
        final(stages)?.written === '${POSTGRES_IMAGE}' ? [] : ['the runtime stage is not FROM ${POSTGRES_IMAGE}'],
      );
    },
  },
  {
    id: 'postgres-base',
    title: 'the runtime stage is the PostgreSQL 15 image pinned to a minor version',
    check(stages) {
      const image = final(stages)?.image ?? '';
      const { name, tag } = imageRef(image);
      const version = tag?.split('-')[0] ?? '';
      return /(^|\/)postgres$/.test(name) && /^15\.\d+$/.test(version) ? [] : [`runtime FROM ${image}: expected postgres:15.<minor>[-<debian>]`];
    },
  },
  {
    id: 'no-latest',
    title: 'no image is referenced as :latest (Dockle DKL-DI-0006, hadolint DL3007)',
    check(stages, all) {
      return all
        .filter((i) => /:latest\b/i.test(body(i)) && ['FROM', 'COPY'].includes(i.getKeyword()))
        .map((i) => `line ${line(i)}: ${i.getKeyword()} uses :latest`)
        .concat(stages.filter((s) => s.image !== s.written && /:latest\b/i.test(s.image)).map((s) => `FROM ${s.written}: the default ${s.image} is :latest`));
    },
  },
  {
    id: 'no-add',
    title: 'COPY, never ADD (Dockle CIS-DI-0009)',
    check(_stages, all) {
      return all.filter((i) => i.getKeyword() === 'ADD').map((i) => `line ${line(i)}: ADD (use COPY; ADD fetches URLs and unpacks archives)`);
    },
  },
  {
    id: 'user',
    title: 'the runtime stage ends as a numeric non-root user, uid 26 as in CloudNativePG (Dockle CIS-DI-0001)',
    check(stages) {
      const users = keyword(final(stages), 'USER');
      const last = users.at(-1);
      if (!last) return ['the runtime stage has no USER: it would run as root'];
      const spec = body(last).trim();
      const [uid = '', gid, ...rest] = spec.split(':');
      if (rest.length > 0 || !/^\d+$/.test(uid) || (gid !== undefined && !/^\d+$/.test(gid))) {
        return [`USER ${spec}: must be numeric (uid[:gid]) so runAsNonRoot can verify it without /etc/passwd`];
      }
      const problems: string[] = [];
      if (Number(uid) === 0 || (gid !== undefined && Number(gid) === 0)) problems.push(`USER ${spec}: root`);
      if (uid !== '26') problems.push(`USER ${spec}: CloudNativePG's images and pod securityContext use uid 26`);
      return problems;
    },
  },
  {
    id: 'postgres-uid',
    title: "the postgres account is uid/gid 26 in the image (CloudNativePG's), set explicitly: the bases use 999",
    check(stages) {
      const text = keyword(final(stages), 'RUN').map(body).join('\n');
      const problems: string[] = [];
      if (!/\bgroupmod -g 26 postgres\b/.test(text)) problems.push('no `groupmod -g 26 postgres`');
      if (!/\busermod -u 26 -g 26 postgres\b/.test(text)) problems.push('no `usermod -u 26 -g 26 postgres`');
      return problems;
    },
  },
  {
    id: 'entrypoint',
    title: 'pgim is the ENTRYPOINT in exec form, so it is PID 1: no shell, no init wrapper',
    check(stages) {
      const entrypoints = keyword(final(stages), 'ENTRYPOINT');
      const last = entrypoints.at(-1);
      if (!last) return ['no ENTRYPOINT'];
      const argv = execForm(body(last));
      if (!argv) return [`line ${line(last)}: ENTRYPOINT in shell form runs /bin/sh -c as PID 1`];
      const problems: string[] = [];
      const [program = ''] = argv;
      if (!/(^|\/)pgim$/.test(program)) problems.push(`ENTRYPOINT starts ${program}, not pgim`);
      if (argv.some((a) => /(^|\/)(tini|dumb-init|s6-svscan|init|su-exec|gosu|sh|bash)$/.test(a))) problems.push('ENTRYPOINT has an init wrapper or shell: pgim reaps and forwards signals itself');
      for (const cmd of keyword(final(stages), 'CMD')) if (!execForm(body(cmd))) problems.push(`line ${line(cmd)}: CMD in shell form`);
      return problems;
    },
  },
  {
    id: 'healthcheck',
    title: 'HEALTHCHECK in exec form on /readyz (Dockle CIS-DI-0006)',
    check(stages) {
      const check = keyword(final(stages), 'HEALTHCHECK').at(-1);
      if (!check) return ['no HEALTHCHECK'];
      const text = body(check);
      const cmd = /\bCMD\b(.*)$/s.exec(text)?.[1];
      if (cmd === undefined) return ['HEALTHCHECK NONE or without CMD'];
      const argv = execForm(cmd);
      if (!argv) return ['HEALTHCHECK CMD in shell form (a shell per probe; dockerfilelint 1.8 also crashes on it)'];
      return argv.some((a) => a.includes('/readyz')) ? [] : ['HEALTHCHECK does not probe /readyz'];
    },
  },
  {
    id: 'apt',
    title: 'apt-get: update and install in one RUN, --no-install-recommends, no upgrade, lists removed (Dockle DKL-DI-0005, CIS-DI-0007, DKL-DI-0003)',
    check(stages, all) {
      const problems: string[] = [];
      for (const r of all.filter((i) => i.getKeyword() === 'RUN')) {
        const text = body(r);
        if (!/\bapt(-get)?\b/.test(text)) continue;
        const cleans = /rm -rf? [^&;]*\/var\/lib\/apt\/lists/.test(text);
        if (/\bapt(-get)? (update)\b/.test(text) && !/\bapt(-get)? [^&;]*\binstall\b/.test(text)) problems.push(`line ${line(r)}: apt-get update alone (a cached layer would install from stale lists)`);
        if (/\bapt(-get)? [^&;]*\binstall\b/.test(text) && !/--no-install-recommends/.test(text)) problems.push(`line ${line(r)}: apt-get install without --no-install-recommends`);
        if (/\bapt(-get)? [^&;]*\b(upgrade|dist-upgrade|full-upgrade)\b/.test(text)) problems.push(`line ${line(r)}: apt-get upgrade (pin the base image instead)`);
        if (/\bapt(-get)? (update|[^&;]*\binstall)\b/.test(text) && !cleans) problems.push(`line ${line(r)}: apt lists are not removed in the same RUN`);
      }
      if (!keyword(final(stages), 'RUN').some((r) => /rm -rf? [^&;]*\/var\/lib\/apt\/lists/.test(body(r)))) problems.push('the runtime stage never removes /var/lib/apt/lists');
      return problems;
    },
  },
  {
    id: 'labels',
    title: 'OCI image labels: title, description, version, revision, licenses, base.name',
    check(stages) {
      const labels = properties(keyword(final(stages), 'LABEL'));
      return REQUIRED_OCI_LABELS.filter((k) => !labels.get(k)).map((k) => `missing LABEL ${k}`);
    },
  },
  {
    id: 'paths',
    title: "CloudNativePG's paths: PGDATA=/var/lib/postgresql/data/pgdata, runtime dir /controller",
    check(stages) {
      const env = properties(keyword(final(stages), 'ENV'));
      const problems: string[] = [];
      if (env.get('PGDATA') !== '/var/lib/postgresql/data/pgdata') problems.push(`PGDATA=${env.get('PGDATA') ?? '(unset)'}`);
      if (env.get('PGIM_RUNTIME_DIR') !== '/controller') problems.push(`PGIM_RUNTIME_DIR=${env.get('PGIM_RUNTIME_DIR') ?? '(unset)'}`);
      return problems;
    },
  },
  {
    id: 'no-secrets',
    title: 'no secret-looking ENV or ARG, no sudo, nothing copied from .pgim or key files (Dockle CIS-DI-0010, DKL-DI-0001)',
    check(_stages, all) {
      const problems: string[] = [];
      const secretName = /(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIALS?)$/i;
      for (const i of all) {
        const word = i.getKeyword();
        if (word === 'ENV' || word === 'ARG') {
          for (const name of word === 'ENV' ? properties([i]).keys() : [body(i).split('=')[0]?.trim() ?? '']) {
            if (secretName.test(name)) problems.push(`line ${line(i)}: ${word} ${name} looks like a secret (build args and ENV stay in the image history)`);
          }
        }
        if (word === 'RUN' && /\bsudo\b/.test(body(i))) problems.push(`line ${line(i)}: sudo`);
        if ((word === 'COPY' || word === 'ADD') && /(\.pgim|\.key\b|\.pem\b|secrets\/)/.test(body(i))) problems.push(`line ${line(i)}: copies secret material into the image`);
      }
      return problems;
    },
  },
  {
    id: 'stopsignal',
    title: 'STOPSIGNAL SIGTERM (the base image says SIGINT; pgim stops smart-then-fast on SIGTERM, as the kubelet sends)',
    check(stages) {
      const signal = keyword(final(stages), 'STOPSIGNAL').at(-1);
      return signal && body(signal).trim() === 'SIGTERM' ? [] : ['STOPSIGNAL is not SIGTERM'];
    },
  },
];

/** Every problem of every rule, prefixed with the rule id. */
export function dockerfileProblems(text: string): string[] {
  const { stages, all } = parseStages(text);
  return rules.flatMap((rule) => rule.check(stages, all).map((p) => `${rule.id}: ${p}`));
}
