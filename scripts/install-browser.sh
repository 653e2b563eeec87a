#!/usr/bin/env bash
# Installs the browser peer of the tests and the page to watch a room:
#   1. Chromium from Debian's packages (skipped when /usr/bin/chromium exists);
#   2. the Node packages of browser/ from its lockfile (mediasoup-client, protoo-client,
#      puppeteer-core, esbuild; puppeteer-core downloads no browser);
#   3. the page bundles (browser/dist), rebuilt only when a source is newer.
# Idempotent and quick when done. Fails with one clear line when it cannot.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
browser="$here/browser"
chromium="${MEDIASOUP_CLIENT_CHROMIUM:-/usr/bin/chromium}"

die() { echo "install-browser: $*" >&2; exit 1; }
log() { echo "install-browser: $*" >&2; }

# 1. Chromium.
if [ ! -x "$chromium" ]; then
  command -v apt-get >/dev/null || die "Chromium is missing at $chromium and there is no apt-get to install it (install Chromium, or set MEDIASOUP_CLIENT_CHROMIUM)"
  [ "$(id -u)" -eq 0 ] || die "Chromium is missing at $chromium: install it as root (apt-get install chromium), or set MEDIASOUP_CLIENT_CHROMIUM"
  log "installing Chromium from Debian's packages"
  apt_log="$(mktemp)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } >"$apt_log" 2>&1; then
    tail -n 5 "$apt_log" >&2
    rm -f "$apt_log"
    die "apt-get could not install chromium (see the lines above)"
  fi
  rm -f "$apt_log"
  [ -x "$chromium" ] || die "apt-get installed chromium but $chromium is still missing"
fi

# 2. Node packages, from the lockfile.
command -v npm >/dev/null || die "npm is required (npm not found on PATH)"
if [ ! -d "$browser/node_modules/mediasoup-client" ] || [ ! -d "$browser/node_modules/puppeteer-core" ] \
   || [ ! -x "$browser/node_modules/.bin/esbuild" ] \
   || [ "$browser/package-lock.json" -nt "$browser/node_modules/.package-lock.json" ]; then
  log "installing Node packages in browser/"
  (cd "$browser" && npm ci --no-audit --no-fund --loglevel=error >&2) \
    || die "npm ci failed in browser/ (is the npm registry reachable?)"
fi

# 3. The bundles, when a source (or the installed packages) changed since the last build.
stale=0
for bundle in peer watch; do
  out="$browser/dist/$bundle.js"
  if [ ! -f "$out" ] || [ -n "$(find "$browser/src" "$browser/package-lock.json" -newer "$out" -print -quit)" ]; then
    stale=1
  fi
done
if [ "$stale" -eq 1 ]; then
  log "bundling the pages with esbuild"
  (cd "$browser" && npm run --silent build >&2) || die "esbuild could not bundle browser/src"
fi
