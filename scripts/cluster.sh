#!/usr/bin/env bash
# A local 3-instance cluster (a primary and two streaming replicas) as separate pgim processes on 127.0.0.1, with
# generated certificates: the Compose topology without Docker. Prints how to connect; Ctrl-C stops all cleanly.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
base_port=${PGIM_CLUSTER_BASE_PORT:-55440}   # PostgreSQL 55441-55443, status 58441-58443, metrics 59441-59443
run_as=${PGIM_USER:-postgres}
say() { printf '[cluster] %s\n' "$*" >&2; }

"$repo/scripts/install-deps.sh"
say "building pgim"
npm run --silent build

state=${PGIM_CLUSTER_DIR:-$repo/.pgim/cluster}
if [ "$(id -u)" -eq 0 ]; then
  mkdir -p "$state"
  if ! su -s /bin/sh "$run_as" -c "test -x '$state'" 2>/dev/null; then state=/var/tmp/pgim-cluster; fi
fi
config=$state/config
mkdir -p "$config/secrets/demo-app" "$config/secrets/demo-superuser" "$config/configmaps/demo-hosts"
sed 's/^  instances: 1$/  instances: 3/' examples/demo/cluster.yaml >"$config/cluster.yaml"
new_password() { node -e 'process.stdout.write(require("crypto").randomBytes(18).toString("base64url"))'; }
for pair in demo-app:app demo-superuser:postgres; do
  dir=$config/secrets/${pair%%:*}
  if [ ! -s "$dir/password" ]; then (umask 077 && printf '%s' "${pair##*:}" >"$dir/username" && new_password >"$dir/password"); fi
done
for n in 1 2 3; do printf '127.0.0.1:%s' "$((base_port + n))" >"$config/configmaps/demo-hosts/demo-$n"; done
node dist/cmd/pgim.js certs --cluster demo --instances 3 --out "$config/secrets" >&2
chmod -R go-rwx "$state"
if [ "$(id -u)" -eq 0 ]; then chown -R "$run_as:" "$state"; fi

pids=()
stop_all() {
  say "stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
}
trap stop_all INT TERM

wait_ready() { # port pid
  for _ in $(seq 1 600); do
    if ! kill -0 "$2" 2>/dev/null; then return 1; fi
    if node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "http://127.0.0.1:$1/readyz"; then return 0; fi
    sleep 0.2
  done
  return 1
}

started=$(date +%s%N)
for n in 1 2 3; do
  setsid node dist/cmd/pgim.js run --config-dir "$config" --pod-name "demo-$n" \
    --pgdata "$state/demo-$n/pgdata" --runtime-dir "$state/demo-$n/runtime" --listen-address 127.0.0.1 --user "$run_as" \
    --pg-port "$((base_port + n))" --status-port "$((base_port + 3000 + n))" --metrics-port "$((base_port + 4000 + n))" \
    >"$state/demo-$n.log" 2>&1 &
  pids+=($!)
  # The primary first: the replicas clone it.
  if [ "$n" -eq 1 ] && ! wait_ready "$((base_port + 3001))" "${pids[0]}"; then say "the primary did not start; see $state/demo-1.log"; stop_all; exit 1; fi
done
for n in 2 3; do
  if ! wait_ready "$((base_port + 3000 + n))" "${pids[$((n - 1))]}"; then say "demo-$n did not start; see $state/demo-$n.log"; stop_all; exit 1; fi
done
say "all three instances ready in $(( ($(date +%s%N) - started) / 1000000 )) ms"

app_password=$(cat "$config/secrets/demo-app/password")
echo
echo "pgim local cluster \"demo\" is running (logs: $state/demo-N.log)"
for n in 1 2 3; do
  role=replica; [ "$n" -eq 1 ] && role=primary
  echo "  demo-$n ($role)  postgresql://app:$app_password@127.0.0.1:$((base_port + n))/app   status http://127.0.0.1:$((base_port + 3000 + n))/pg/status"
done
echo "Press Ctrl-C to stop all three cleanly."
echo
set +e
for pid in "${pids[@]}"; do
  while kill -0 "$pid" 2>/dev/null; do wait "$pid"; done
done
say "all instances stopped"
