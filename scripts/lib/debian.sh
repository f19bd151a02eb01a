# shellcheck shell=bash
# Debian packages for pgim's scripts (install-deps.sh, security-checks.sh, image.sh); sourced, not run.
#
# Several apt-get runs may share a machine (other jobs, unattended upgrades): every call waits up to 10 minutes for
# the package manager's locks instead of failing at once. Seen before this existed: gates reported SKIPPED, "needs
# root", when the real cause was a held dpkg lock.

debian_say() { printf '[%s] %s\n' "${debian_log_tag:-debian}" "$*" >&2; }

debian_lists_updated=
# apt_install PACKAGE...: installs the packages (no recommends); returns non-zero when it cannot (not root, no
# apt-get, a package that does not install). The caller decides whether that ends the run.
apt_install() {
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    debian_say "cannot install Debian packages here (needs root and apt-get): $*"
    debian_say "install them with: sudo apt-get install -y --no-install-recommends $*"
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  local lock=(-o DPkg::Lock::Timeout=600)
  if [ -z "$debian_lists_updated" ]; then
    # The lists lock has no timeout option of its own: retry for up to 10 minutes while another run holds it.
    local tries=0
    until apt-get "${lock[@]}" update -qq; do
      tries=$((tries + 1))
      if [ "$tries" -ge 120 ]; then debian_say "apt-get update failed for 10 minutes"; return 1; fi
      sleep 5
    done
    debian_lists_updated=1
  fi
  debian_say "installing Debian packages: $*"
  apt-get "${lock[@]}" install -y -qq --no-install-recommends "$@" >/dev/null
}

# require_command COMMAND PACKAGE...: true when COMMAND is there, installing the PACKAGEs first when it is not.
# Under CI=true a command that could not be installed ends the run (exit 1): CI never reports a check SKIPPED for a
# tool it could have installed. Elsewhere it returns 1 and the caller says SKIPPED, loudly.
require_command() {
  local command=$1
  shift
  command -v "$command" >/dev/null 2>&1 && return 0
  apt_install "$@" || true
  command -v "$command" >/dev/null 2>&1 && return 0
  if [ "${CI:-}" = true ]; then
    debian_say "FAILED: $command is missing and the Debian package(s) $* could not be installed (CI=true: no skip)"
    exit 1
  fi
  return 1
}
