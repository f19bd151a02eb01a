#!/usr/bin/env bash
# pgim's security gates (docs/security.md lists each one and what it proves). scripts/test.sh runs this after the
# install, lint and build steps, before the tests:
#
#   scripts/security-checks.sh                 alone: installs what is missing, lints and builds first
#   scripts/security-checks.sh --after-build   from scripts/test.sh: dependencies, lint and build are done
#
# Debian tools (shellcheck, yamllint, docker-compose, podman and debootstrap for the image) are installed with apt-get
# when missing, waiting for the package lock (scripts/lib/debian.sh). Under CI=true a tool that could not be installed
# fails the run; elsewhere (not root, no apt-get) that check is SKIPPED, loudly, and listed at the end. Only what
# cannot exist here is SKIPPED under CI, saying so. Nothing is ever reported as passed that did not run.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=scripts/lib/debian.sh
. "$repo/scripts/lib/debian.sh"
debian_log_tag=security

after_build=
case "${1:-}" in
  --after-build) after_build=1 ;;
  "") ;;
  *) echo "usage: $0 [--after-build]" >&2; exit 2 ;;
esac

say() { printf '[security] %s\n' "$*" >&2; }
passed=()
skipped=()
step=
begin() { step=$1; echo "== security: $1"; }
pass() { passed+=("$step"); say "PASS: $step${1:+ ($1)}"; }
skip() { skipped+=("$step: $1"); say "SKIPPED: $step: $1"; }
trap 'say "FAILED: $step"' ERR

# have COMMAND PACKAGE...: true when COMMAND is there, installing the Debian PACKAGEs first; under CI=true a command
# that cannot be installed ends the run (require_command in scripts/lib/debian.sh).
have() { require_command "$@"; }

if [ -z "$after_build" ]; then
  "$repo/scripts/install-deps.sh"
  begin "tsc --noEmit + ESLint (typescript-eslint strictTypeChecked, eslint-plugin-security, eslint-plugin-n), zero warnings"
  npm run --silent lint
  pass
  npm run --silent build
else
  say "tsc --noEmit and ESLint ran in scripts/test.sh (npm run lint)"
fi

# --- Supply chain (offline) -------------------------------------------------------------------------------------
begin "npm: node_modules is exactly package-lock.json (npm ci checked every tarball's sha512 integrity)"
npm ls --all >/dev/null
pass

begin "lockfile-lint: npm registry only, https only, sha512 integrity, package names match"
npx --no-install lockfile-lint --path package-lock.json --type npm --allowed-hosts npm --validate-https \
  --validate-integrity --validate-package-names --empty-hostname false --format plain
pass

begin "npm audit (known vulnerabilities, high and critical)"
audit_rc=0
audit_out=$(timeout 120 npm audit --audit-level=high 2>&1) || audit_rc=$?
if [ "$audit_rc" -eq 0 ]; then
  pass "no high or critical advisory"
elif [ "$audit_rc" -eq 124 ]; then
  skip "npm audit timed out: no advisory service reachable; this is NOT a pass"
elif grep -qE '405 Method Not Allowed|audit endpoint returned an error|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT' <<<"$audit_out"; then
  skip "the registry reachable here has no advisory endpoint ($(grep -m1 -oE '[0-9]{3} [A-Za-z ]+ - POST [^ ]+|ENOTFOUND [^ ]+|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT' <<<"$audit_out" || echo 'audit endpoint error')); this is NOT a pass"
else
  printf '%s\n' "$audit_out" >&2
  false
fi

begin "CycloneDX SBOM of the production dependencies (dist/sbom.cdx.json, what the image ships)"
mkdir -p dist
npm sbom --sbom-format cyclonedx --omit dev >dist/sbom.cdx.json
components=$(node -e '
  const bom = JSON.parse(require("fs").readFileSync("dist/sbom.cdx.json", "utf8"));
  if (bom.bomFormat !== "CycloneDX" || !Array.isArray(bom.components) || bom.components.length === 0) process.exit(1);
  console.log("CycloneDX " + bom.specVersion + ", " + bom.components.length + " components");')
pass "$components"

# --- Shell and YAML -----------------------------------------------------------------------------------------------
# Every shell script of the repository: *.sh, and files whose first line is a sh or bash shebang (.ci/run).
project_files() {
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files --cached --others --exclude-standard
  else
    find . -path ./node_modules -prune -o -path ./dist -prune -o -path ./.git -prune -o -type f -print | sed 's|^\./||'
  fi
}
shell_scripts=()
while IFS= read -r file; do
  [ -f "$file" ] || continue
  case "$file" in node_modules/*|dist/*) continue ;; esac
  if [[ $file == *.sh ]] || head -n1 "$file" | grep -qE '^#!.*[/ ](ba)?sh( |$)'; then shell_scripts+=("$file"); fi
done < <(project_files)

begin "shellcheck on every shell script (${#shell_scripts[@]}: ${shell_scripts[*]})"
if have shellcheck shellcheck; then
  shellcheck "${shell_scripts[@]}"
  pass
else
  skip "shellcheck is not installed and could not be (Debian package shellcheck; see the messages above)"
fi

yaml_targets=(compose.yaml)
for dir in deploy examples; do [ -d "$dir" ] && yaml_targets+=("$dir"); done
begin "yamllint (scripts/yamllint.yaml) on ${yaml_targets[*]}"
if have yamllint yamllint; then
  yamllint -c scripts/yamllint.yaml "${yaml_targets[@]}"
  pass
else
  skip "yamllint is not installed and could not be (Debian package yamllint; see the messages above)"
fi

begin "docker-compose config -q (compose.yaml is a valid Compose file; no engine needed)"
if have docker-compose docker-compose; then
  docker-compose -f compose.yaml config -q
  pass
else
  skip "docker-compose is not installed and could not be (Debian package docker-compose; see the messages above)"
fi

# --- Container image (static checks first; then the image built and scanned) -------------------------------------
begin "dockerfilelint Dockerfile"
npx --no-install dockerfilelint Dockerfile
pass

begin "dockerfile-utils lint Dockerfile (it exits 0 on findings: any output fails)"
lint_out=$(npx --no-install dockerfile-utils lint Dockerfile 2>&1)
if [ -n "$lint_out" ]; then printf '%s\n' "$lint_out" >&2; false; fi
pass

begin "project rules: Dockerfile, .dockerignore, compose.yaml, deploy/ manifests, lockfile (test/static)"
npx --no-install mocha --no-config --timeout 60000 --reporter dot 'dist/test/static/*.test.js'
pass

begin "image: scripts/image.sh builds it with podman from the Dockerfile; Dockle v0.4.15: no FATAL, WARN or unaccepted INFO"
if have podman podman runc netavark aardvark-dns && have debootstrap debootstrap; then
  image=$("$repo/scripts/image.sh" | tail -n1)
  pass "$image"
else
  skip "podman or debootstrap is not installed and could not be (see the messages above)"
fi

begin "image vulnerability scan (Trivy)"
skip "cannot exist here: Trivy's vulnerability database is published only on a container registry this machine cannot reach (Dockle above checks the image's configuration and files, not CVEs); this is NOT a pass"

trap - ERR
echo
say "${#passed[@]} checks passed, ${#skipped[@]} skipped"
for s in "${skipped[@]}"; do say "  skipped: $s"; done
