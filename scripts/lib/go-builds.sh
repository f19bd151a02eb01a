# shellcheck shell=bash
# scripts/test.sh's Go-built test tools, built in the background (each script caches by version or hash:
# scripts/lib/go-build.sh). go_builds_start starts three chains; go_builds_wait waits for all of them, prints how
# long each took, and exports PGIM_K8S_BIN_DIR, PGIM_CNPG_OPERATOR_BIN, PGIM_CNPG_CONFORMANCE_BIN, PGIM_CNPG_CLUSTER_PREP_BIN and
# PGIM_VERSITYGW.
# A failed build fails the run where Go is installed (its log is printed); without Go only cache hits can work, and
# the tests that miss a binary skip themselves loudly.

go_builds_start() {
  go_builds_dir=$(mktemp -d "${TMPDIR:-/tmp}/pgim-go-builds.XXXXXX")
  go_builds_began=$SECONDS
  go_builds_pids=()
  # Each chain: its scripts in order, each one's stdout in <dir>/<script>.out, progress in <dir>/<chain>.log.
  local chain
  for chain in "build-k8s-test-binaries" "build-dockle build-cnpg-operator build-cnpg-conformance build-cnpg-cluster-prep" "build-versitygw"; do
    (
      for script in $chain; do
        started=$SECONDS
        if "${repo:?}/scripts/$script.sh" >"$go_builds_dir/$script.out"; then
          echo "[go-builds] $script: $((SECONDS - started)) s" >&2
        else
          echo "[go-builds] $script FAILED after $((SECONDS - started)) s" >&2
          exit 1
        fi
      done
    ) 2>"$go_builds_dir/${chain%% *}.log" &
    go_builds_pids+=("$!:${chain%% *}")
  done
  echo "== Go-built test tools: building in the background (logs in $go_builds_dir)"
}

go_builds_wait() {
  echo "== Go-built test tools: waiting for the background builds"
  local entry pid name failed=0
  for entry in "${go_builds_pids[@]}"; do
    pid=${entry%%:*}
    name=${entry#*:}
    if ! wait "$pid"; then
      failed=1
      echo "-- $name chain failed; its log:" >&2
      cat "$go_builds_dir/$name.log" >&2
    else
      grep '^\[go-builds\]' "$go_builds_dir/$name.log" >&2 || true
    fi
  done
  echo "== Go-built test tools: $((SECONDS - go_builds_began)) s after they started"
  if ((failed)); then
    if command -v go >/dev/null 2>&1; then echo "a Go build failed" >&2; exit 1; fi
    echo "Go is not installed and some tools are not cached: the tests that need them skip themselves" >&2
  fi
  PGIM_K8S_BIN_DIR=$(go_builds_path build-k8s-test-binaries)
  PGIM_CNPG_OPERATOR_BIN=$(go_builds_path build-cnpg-operator)
  PGIM_CNPG_CONFORMANCE_BIN=$(go_builds_path build-cnpg-conformance)
  PGIM_CNPG_CLUSTER_PREP_BIN=$(go_builds_path build-cnpg-cluster-prep)
  PGIM_VERSITYGW=$(go_builds_path build-versitygw)
  export PGIM_K8S_BIN_DIR PGIM_CNPG_OPERATOR_BIN PGIM_CNPG_CONFORMANCE_BIN PGIM_CNPG_CLUSTER_PREP_BIN PGIM_VERSITYGW
  rm -rf -- "$go_builds_dir"
}

# The path a build script printed last (empty when it did not run or failed).
go_builds_path() {
  if [[ -s "$go_builds_dir/$1.out" ]]; then tail -n1 "$go_builds_dir/$1.out"; fi
}
