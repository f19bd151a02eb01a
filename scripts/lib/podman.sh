# shellcheck shell=bash
# podman's settings for pgim's scripts and tests; sourced, not run.
#
# podman_containers_conf: writes a containers.conf and exports CONTAINERS_CONF pointing at it (podman and
# podman-compose then use it instead of the system's files). On the machines this project was built on, podman's
# defaults do not work (found by trying): crun fails ("cgroups in hybrid mode not supported") while runc works, the
# systemd cgroup manager needs a systemd that is not there (cgroupfs works), and the default RLIMIT_NOFILE is above
# the hard limit and refused. The limits given to containers are the machine's hard limits, capped.
podman_containers_conf() {
  local dir=${PGIM_CACHE_DIR:-${HOME:?HOME is not set}/.cache/pgim}/podman
  local hard_nofile hard_nproc
  hard_nofile=$(ulimit -Hn)
  hard_nproc=$(ulimit -Hu)
  if [ "$hard_nofile" = unlimited ] || [ "$hard_nofile" -gt 65536 ]; then hard_nofile=65536; fi
  if [ "$hard_nproc" = unlimited ] || [ "$hard_nproc" -gt 4096 ]; then hard_nproc=4096; fi
  mkdir -p "$dir"
  cat >"$dir/containers.conf.tmp" <<CONF
# Written by scripts/lib/podman.sh (pgim); see that file for why.
[containers]
default_ulimits = ["nofile=$hard_nofile:$hard_nofile", "nproc=$hard_nproc:$hard_nproc"]
log_driver = "k8s-file"

[network]
network_backend = "netavark"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
  mv "$dir/containers.conf.tmp" "$dir/containers.conf"
  export CONTAINERS_CONF=$dir/containers.conf
}

# podman_compose_install: podman-compose from PyPI at the version and hashes pinned in
# scripts/image/podman-compose.requirements.txt, in a virtual environment under ~/.cache/pgim/podman-compose/<version>/
# (made once; remade when the pinned file changes). Prints the program's path.
podman_compose_install() {
  local repo requirements version digest dir
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  requirements=$repo/scripts/image/podman-compose.requirements.txt
  version=$(sed -n 's/^podman-compose==\([^ ]*\).*/\1/p' "$requirements")
  digest=$(sha256sum <"$requirements" | cut -c1-16)
  dir=${PGIM_CACHE_DIR:-${HOME:?HOME is not set}/.cache/pgim}/podman-compose/$version
  if [ "$(cat "$dir/.pgim-installed" 2>/dev/null)" != "$digest" ]; then
    rm -rf "$dir"
    mkdir -p "$(dirname "$dir")"
    if ! python3 -m venv "$dir" >/dev/null 2>&1; then
      # Debian's python3 needs python3-venv for that.
      rm -rf "$dir"
      apt_install python3-venv || return 1
      /usr/bin/python3 -m venv "$dir"
    fi
    "$dir/bin/pip" install --quiet --disable-pip-version-check --require-hashes --only-binary podman-compose,python-dotenv \
      -r "$requirements" >&2
    echo "$digest" >"$dir/.pgim-installed"
  fi
  printf '%s\n' "$dir/bin/podman-compose"
}
