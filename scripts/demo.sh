#!/usr/bin/env bash
# Starts a demo pgim instance from examples/demo: installs what is missing, builds, generates the demo's Secrets
# (never committed), runs pgim in files mode on 127.0.0.1, prints how to connect, and stops cleanly on Ctrl-C.
#
#   scripts/demo.sh              a single instance
#   scripts/demo.sh --backups    the same, archiving WAL to a local S3 server (versitygw, built and cached by
#                                scripts/build-versitygw.sh) on 127.0.0.1:$PGIM_DEMO_S3_PORT (default 59000)
set -euo pipefail

backups=
case "${1:-}" in
  --backups) backups=1 ;;
  '') ;;
  *) printf 'usage: %s [--backups]\n' "$0" >&2; exit 2 ;;
esac

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

pg_port=${PGIM_DEMO_PG_PORT:-55432}      # not 5432: never clash with a system PostgreSQL
status_port=${PGIM_DEMO_STATUS_PORT:-58000}
metrics_port=${PGIM_DEMO_METRICS_PORT:-59187}
s3_port=${PGIM_DEMO_S3_PORT:-59000}
run_as=${PGIM_USER:-postgres}

say() { printf '[demo] %s\n' "$*" >&2; }

"$repo/scripts/install-deps.sh"
say "building pgim"
npm run --silent build

ports=("$pg_port" "$status_port" "$metrics_port")
if [ -n "$backups" ]; then ports+=("$s3_port"); fi
for port in "${ports[@]}"; do
  if node -e 'const s=require("net").createServer().once("error",()=>process.exit(1)).listen(+process.argv[1],"127.0.0.1",()=>s.close())' "$port"; then :; else
    say "port $port on 127.0.0.1 is in use (is a demo already running?). Choose others with PGIM_DEMO_PG_PORT, PGIM_DEMO_STATUS_PORT, PGIM_DEMO_METRICS_PORT."
    exit 1
  fi
done

state=${PGIM_DEMO_DIR:-$repo/.pgim/demo}
if [ "$(id -u)" -eq 0 ]; then
  # pgim drops root and runs postgres as $run_as, which must reach the state folder.
  mkdir -p "$state"
  if ! su -s /bin/sh "$run_as" -c "test -x '$state'" 2>/dev/null; then
    state=/var/tmp/pgim-demo
    say "user $run_as cannot reach $repo/.pgim; using $state instead"
  fi
fi
config=$state/config
mkdir -p "$config/secrets/demo-app" "$config/secrets/demo-superuser"
if [ -n "$backups" ]; then
  sed "s/S3_PORT/$s3_port/" examples/demo/cluster-backups.yaml >"$config/cluster.yaml"
  mkdir -p "$config/scheduledbackups"
  cp examples/demo/scheduledbackup.yaml "$config/scheduledbackups/demo-hourly.yaml"
else
  cp examples/demo/cluster.yaml "$config/cluster.yaml"
fi

new_password() { node -e 'process.stdout.write(require("crypto").randomBytes(18).toString("base64url"))'; }
write_secret() { # name username
  local dir=$config/secrets/$1
  if [ ! -s "$dir/password" ]; then
    (umask 077 && printf '%s' "$2" >"$dir/username" && new_password >"$dir/password")
  fi
}
write_secret demo-app app
write_secret demo-superuser postgres
s3_pid=
if [ -n "$backups" ]; then
  # The S3 credentials: a Secret like any other, read by pgim and handed to Barman Cloud in its environment only.
  mkdir -p "$config/secrets/demo-backup" "$state/s3/backups"
  [ -s "$config/secrets/demo-backup/ACCESS_KEY_ID" ] || (umask 077 && printf 'demo%s' "$(new_password | tr -dc 'a-zA-Z0-9' | head -c 12)" >"$config/secrets/demo-backup/ACCESS_KEY_ID")
  [ -s "$config/secrets/demo-backup/ACCESS_SECRET_KEY" ] || (umask 077 && new_password >"$config/secrets/demo-backup/ACCESS_SECRET_KEY")
  versitygw=$("$repo/scripts/build-versitygw.sh" | tail -n1)
  say "starting the S3 server (versitygw) on 127.0.0.1:$s3_port, objects in $state/s3"
  ROOT_ACCESS_KEY_ID=$(cat "$config/secrets/demo-backup/ACCESS_KEY_ID") \
  ROOT_SECRET_ACCESS_KEY=$(cat "$config/secrets/demo-backup/ACCESS_SECRET_KEY") \
    setsid "$versitygw" --port "127.0.0.1:$s3_port" posix "$state/s3" >"$state/s3.log" 2>&1 &
  s3_pid=$!
fi
chmod -R go-rwx "$state"
if [ "$(id -u)" -eq 0 ]; then chown -R "$run_as:" "$state"; fi

app_password=$(cat "$config/secrets/demo-app/password")
super_password=$(cat "$config/secrets/demo-superuser/password")
log=$state/pgim.log

say "starting pgim (logs: $log)"
# Its own session: Ctrl-C reaches this script, which asks pgim to stop once, cleanly.
setsid node dist/cmd/pgim.js run \
  --config-dir "$config" --pgdata "$state/pgdata" --runtime-dir "$state/runtime" \
  --pg-port "$pg_port" --status-port "$status_port" --metrics-port "$metrics_port" \
  --listen-address 127.0.0.1 --user "$run_as" >"$log" 2>&1 &
pid=$!
stop() { kill -TERM "$pid" 2>/dev/null || true; }
# shellcheck disable=SC2317 # called by the EXIT trap
stop_s3() { if [ -n "$s3_pid" ]; then kill -TERM "$s3_pid" 2>/dev/null || true; fi; }
trap stop_s3 EXIT
trap stop INT TERM

ready=
for _ in $(seq 1 600); do
  if ! kill -0 "$pid" 2>/dev/null; then break; fi
  if node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' \
    "http://127.0.0.1:$status_port/readyz"; then ready=1; break; fi
  sleep 0.2
done
if [ -z "$ready" ]; then
  say "pgim did not become ready; last log lines:"
  tail -n 20 "$log" >&2
  stop
  wait "$pid" || true
  exit 1
fi

cat <<MSG

pgim demo instance "demo-1" is running (pgim PID $pid).
  PostgreSQL  127.0.0.1:$pg_port   database app, owner app (superuser: postgres / $super_password)
  status      http://127.0.0.1:$status_port/pg/status   (or: node dist/cmd/pgim.js status --url http://127.0.0.1:$status_port/pg/status)
  metrics     http://127.0.0.1:$metrics_port/metrics
  logs        $log
  data        $state
Connect with psql using this URI:
postgresql://app:$app_password@127.0.0.1:$pg_port/app
Press Ctrl-C to stop it cleanly.

MSG
if [ -n "$backups" ]; then
  cat <<MSG
WAL is archived to s3://backups/demo on the S3 server at http://127.0.0.1:$s3_port (objects under $state/s3/backups),
uploaded by pgim itself; the ScheduledBackup $config/scheduledbackups/demo-hourly.yaml takes a base backup now
and every hour.
  take a base backup   PGIM_STATUS_PORT=$status_port node dist/cmd/pgim.js backup --name demo-1
  see archiving        node dist/cmd/pgim.js status --url http://127.0.0.1:$status_port/pg/status
  list with Barman     AWS_ACCESS_KEY_ID=\$(cat $config/secrets/demo-backup/ACCESS_KEY_ID) AWS_SECRET_ACCESS_KEY=\$(cat $config/secrets/demo-backup/ACCESS_SECRET_KEY) \\
                         barman-cloud-backup-list --endpoint-url http://127.0.0.1:$s3_port s3://backups/demo demo

MSG
fi

set +e
while kill -0 "$pid" 2>/dev/null; do wait "$pid"; done
wait "$pid"
code=$?
say "pgim exited with code $code"
exit "$code"
