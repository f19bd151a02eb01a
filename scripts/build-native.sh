#!/usr/bin/env bash
# Builds pgim's tiny N-API addon (native/pgim_native.c) with the system C compiler against Node's own headers:
# no node-gyp, no header download. Output: native/build/pgim_native.node. Skips when up to date.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sources=("$repo/native/pgim_native.c" "$repo/native/csvlog_json.c")
out=$repo/native/build/pgim_native.node

up_to_date=1
for src in "${sources[@]}"; do [ -f "$out" ] && [ "$out" -nt "$src" ] || up_to_date=0; done
if [ "$up_to_date" = 1 ]; then exit 0; fi

node_prefix=$(node -p 'process.execPath.replace(/\/bin\/node$/, "")')
include=
for dir in "${PGIM_NODE_INCLUDE:-}" "$node_prefix/include/node" /usr/include/node /usr/local/include/node; do
  if [ -n "$dir" ] && [ -f "$dir/node_api.h" ]; then include=$dir; break; fi
done
if [ -z "$include" ]; then
  echo "build-native: node_api.h not found (install Node's headers, e.g. Debian's libnode-dev, or set PGIM_NODE_INCLUDE)" >&2
  exit 1
fi
cc=${CC:-cc}
if ! command -v "$cc" >/dev/null; then
  echo "build-native: no C compiler ($cc); install gcc" >&2
  exit 1
fi
mkdir -p "$(dirname "$out")"
# N-API symbols resolve against the running node binary at load time, so the object links with none.
"$cc" -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -fPIC -shared -I"$include" \
  -DNODE_GYP_MODULE_NAME=pgim_native -o "$out.tmp" "${sources[@]}"
mv "$out.tmp" "$out"
echo "build-native: built $out" >&2
