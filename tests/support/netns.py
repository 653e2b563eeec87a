"""A network namespace for one test: a veth pair whose root side (``hostIp``) is where the SFU
and coturn listen, and whose namespace side (``peerIp``) is the only way out of it; nftables
rules inside it play the firewall (e.g. no UDP to the SFU). Needs root (``ip``, ``nft``).

Everything it makes is removed by ``destroy()`` (also on errors, and from a context manager);
namespaces left by a test process that was killed are removed by the next one (their names
carry the creating process id).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

PREFIX = "msc-test-"
# TEST-NET-2 (RFC 5737): documentation addresses, routed nowhere; one /30 per namespace.
POOL = ipaddress.ip_network("198.51.100.0/24")
INSTALL_HINT = "scripts/install-net-tools.sh installs iproute2 and nftables (Debian's packages)"


class NetnsError(RuntimeError):
    pass


def _run(*command: str, input: str | None = None) -> str:
    try:
        done = subprocess.run(command, input=input, capture_output=True, text=True, timeout=20)
    except FileNotFoundError:
        raise NetnsError(f"{command[0]} not found: {INSTALL_HINT}") from None
    if done.returncode != 0:
        raise NetnsError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return done.stdout


def requirements() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespace tests need root (ip netns, nft)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"{tool} not found: {INSTALL_HINT}"
    return None


def removeStale() -> None:
    """Namespaces of ours whose creating process is gone."""
    try:
        names = _run("ip", "netns", "list")
    except NetnsError:
        return
    for line in names.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(PREFIX):
            continue
        pid = name[len(PREFIX) :].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)


def _usedNetworks() -> list[ipaddress.IPv4Network]:
    used = []
    for line in _run("ip", "-4", "-o", "addr").splitlines():
        fields = line.split()
        if "inet" in fields:
            used.append(ipaddress.ip_interface(fields[fields.index("inet") + 1]).network)
    return used


class NetworkNamespace:
    def __init__(self) -> None:
        token = secrets.token_hex(3)
        self.name = f"{PREFIX}{os.getpid()}-{token}"
        self.hostVeth = f"msc{token}h"  # at most 15 characters (IFNAMSIZ)
        self.peerVeth = f"msc{token}p"
        self.hostIp = ""
        self.peerIp = ""
        self._created = False
        self._processes: list[subprocess.Popen[Any]] = []

    def create(self) -> NetworkNamespace:
        problem = requirements()
        if problem is not None:
            raise NetnsError(problem)
        removeStale()
        used = _usedNetworks()
        free = [n for n in POOL.subnets(new_prefix=30) if not any(n.overlaps(u) for u in used)]
        if not free:
            raise NetnsError(f"no free /30 left in {POOL}")
        subnet = free[secrets.randbelow(len(free))]
        host, peer = list(subnet.hosts())
        self.hostIp, self.peerIp = str(host), str(peer)
        try:
            _run("ip", "netns", "add", self.name)
            self._created = True
            _run("ip", "link", "add", self.hostVeth, "type", "veth", "peer", "name", self.peerVeth)
            _run("ip", "link", "set", self.peerVeth, "netns", self.name)
            _run("ip", "addr", "add", f"{host}/30", "dev", self.hostVeth)
            _run("ip", "link", "set", self.hostVeth, "up")
            self.ip("addr", "add", f"{peer}/30", "dev", self.peerVeth)
            self.ip("link", "set", self.peerVeth, "up")
            self.ip("link", "set", "lo", "up")
        except BaseException:
            self.destroy()
            raise
        return self

    def ip(self, *arguments: str) -> str:
        return _run("ip", "-n", self.name, *arguments)

    def firewall(self, rules: Sequence[str]) -> None:
        """Replace the namespace's output filter with ``rules`` (nft rule syntax)."""
        body = "\n".join(f"    {rule}" for rule in rules)
        script = (
            "table inet msc_test\ndelete table inet msc_test\n"
            "table inet msc_test {\n  chain output {\n"
            "    type filter hook output priority 0; policy accept;\n"
            f"{body}\n  }}\n}}\n"
        )
        _run("ip", "netns", "exec", self.name, "nft", "-f", "-", input=script)

    def blockUdpTo(self, ip: str, *, exceptPorts: Sequence[int] = ()) -> None:
        """No UDP from the namespace to ``ip`` but to ``exceptPorts`` (a TURN server)."""
        rules = [f"ip daddr {ip} udp dport {port} accept" for port in exceptPorts]
        rules.append(f"ip daddr {ip} meta l4proto udp counter drop")
        self.firewall(rules)

    def rules(self) -> str:
        return _run("ip", "netns", "exec", self.name, "nft", "list", "ruleset")

    def popen(self, command: Sequence[str], **options: Any) -> subprocess.Popen[Any]:
        """A process inside the namespace, in its own session; killed by ``destroy()``."""
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.name, *command], start_new_session=True, **options
        )
        self._processes.append(process)
        return process

    def destroy(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self._processes.clear()
        subprocess.run(["ip", "link", "del", self.hostVeth], capture_output=True, timeout=20)
        if self._created:
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=20)
            self._created = False

    def exists(self) -> bool:
        return self.name in _run("ip", "netns", "list")

    def __enter__(self) -> NetworkNamespace:
        return self.create()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()
