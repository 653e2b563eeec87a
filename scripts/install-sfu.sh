#!/usr/bin/env bash
# Installs the local mediasoup SFU used by the tests, the benchmarks and the CLI:
#   1. the Node.js packages of sfu/ (mediasoup's JS library + protoo-server), without install scripts;
#   2. the mediasoup C++ worker, built once from the registry package's own sources and cached
#      outside the clone, keyed by version, so later runs and clones reuse it.
# Prints the worker binary path on its last line. Fails with a clear message when it cannot.
set -euo pipefail

MEDIASOUP_VERSION="3.8.4"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_root="${MEDIASOUP_CLIENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mediasoup-client-py}"
worker_dir="$cache_root/mediasoup-worker-$MEDIASOUP_VERSION"
worker_bin="$worker_dir/mediasoup-worker"

die() { echo "install-sfu: $*" >&2; exit 1; }
log() { echo "install-sfu: $*" >&2; }

command -v node >/dev/null || die "Node.js is required (node not found on PATH)"
command -v npm >/dev/null || die "npm is required (npm not found on PATH)"

# 1. Node packages of the room server. Scripts are skipped: mediasoup's would build the worker
#    inside node_modules; we build it ourselves below and point MEDIASOUP_WORKER_BIN at it.
if [ ! -d "$here/sfu/node_modules/mediasoup" ] || [ ! -d "$here/sfu/node_modules/protoo-server" ] \
   || [ "$here/sfu/package-lock.json" -nt "$here/sfu/node_modules/.package-lock.json" ]; then
  log "installing Node packages in sfu/"
  (cd "$here/sfu" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2) \
    || die "npm ci failed in sfu/ (is the npm registry reachable?)"
fi

# 2. The worker binary, cached by version.
if [ -x "$worker_bin" ]; then
  log "worker $MEDIASOUP_VERSION cached at $worker_bin"
  echo "$worker_bin"
  exit 0
fi

command -v make >/dev/null || die "make is required to build the mediasoup worker"
command -v g++ >/dev/null || die "g++ is required to build the mediasoup worker"

# gyp needs Python 2.7: $PYTHON if given, else pyenv's 2.7.18, else a python2.7/python2 on PATH
# (a pyenv shim named python2 may point at Python 3, so every candidate is checked).
is_python2() { [ -n "$1" ] && "$1" -c 'import sys; sys.exit(0 if sys.version_info[0] == 2 else 1)' >/dev/null 2>&1; }
python2=""
candidates=("${PYTHON:-}")
command -v pyenv >/dev/null && candidates+=("$(pyenv root)/versions/2.7.18/bin/python2")
candidates+=("$HOME/.pyenv/versions/2.7.18/bin/python2" "$(command -v python2.7 || true)" "$(command -v python2 || true)")
for candidate in "${candidates[@]}"; do
  if is_python2 "$candidate"; then python2="$candidate"; break; fi
done
[ -n "$python2" ] || die "building the mediasoup $MEDIASOUP_VERSION worker needs Python 2.7 for gyp: install it (e.g. pyenv install 2.7.18) or set PYTHON=/path/to/python2"

build_root="$(mktemp -d "${TMPDIR:-/tmp}/mediasoup-worker-build.XXXXXX")"
trap 'rm -rf "$build_root"' EXIT
log "building the mediasoup $MEDIASOUP_VERSION worker in $build_root (about 6 minutes on 2 cores)"
(cd "$build_root" && npm pack --silent "mediasoup@$MEDIASOUP_VERSION" >/dev/null) \
  || die "could not download mediasoup@$MEDIASOUP_VERSION from the npm registry"
tar -xzf "$build_root"/mediasoup-"$MEDIASOUP_VERSION".tgz -C "$build_root"
src="$build_root/package/worker"

# glibc >= 2.34 makes SIGSTKSZ a non-constant long; abseil's std::max needs one type.
absl="$src/deps/libwebrtc/deps/abseil-cpp/abseil-cpp/absl/debugging/failure_signal_handler.cc"
[ -f "$absl" ] && sed -i 's/std::max(SIGSTKSZ, 65536)/std::max<size_t>(SIGSTKSZ, 65536)/' "$absl"

jobs="$(nproc 2>/dev/null || echo 2)"
if ! PYTHON="$python2" MEDIASOUP_MAX_CORES="$jobs" make -C "$src" >"$build_root/build.log" 2>&1; then
  tail -n 40 "$build_root/build.log" >&2
  die "the mediasoup worker build failed (full log above was cut to its last 40 lines)"
fi
built="$src/out/Release/mediasoup-worker"
[ -x "$built" ] || die "the build finished but $built is missing"
mkdir -p "$worker_dir"
cp "$built" "$worker_bin.tmp" && mv "$worker_bin.tmp" "$worker_bin"
log "worker cached at $worker_bin"
echo "$worker_bin"
