#!/usr/bin/env bash
# Debian's packages the connectivity tests use, installed only when missing: coturn (a TURN
# server the tests start on this machine), iproute2 (ip netns, veth pairs) and nftables (the
# firewall inside a test's namespace). Quiet when everything is there; one line on stderr
# and exit status 1 when something cannot be installed (the tests that need it then fail
# saying what is missing).
set -uo pipefail

missing=()
command -v turnserver >/dev/null || missing+=(coturn)
command -v ip >/dev/null || missing+=(iproute2)
command -v nft >/dev/null || missing+=(nftables)
[ ${#missing[@]} -eq 0 ] && exit 0

fail() { echo "install-net-tools: cannot install ${missing[*]}: $*" >&2; exit 1; }
command -v apt-get >/dev/null || fail "no apt-get here (install Debian's ${missing[*]} by hand)"
[ "$(id -u)" -eq 0 ] || fail "apt-get needs root (run this script as root)"

echo "install-net-tools: installing ${missing[*]} (Debian's packages)" >&2
log="$(mktemp "${TMPDIR:-/tmp}/install-net-tools.XXXXXX.log")"
export DEBIAN_FRONTEND=noninteractive
# coturn's package must not start a system-wide TURN server: the tests start their own.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
fi
apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1 \
  || { apt-get update -q >>"$log" 2>&1 && apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$log" 2>&1; }
status=$?
[ "$made_policy" -eq 1 ] && rm -f "$policy"
[ "$status" -eq 0 ] || fail "apt-get failed (log: $log)"
rm -f "$log"
