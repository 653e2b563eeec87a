"""coturn (Debian's ``turnserver``) for tests and benchmarks: a fresh configuration, random
ports, static credentials, no CLI, TLS with a self-signed certificate made here. Started on
one local address (127.0.0.1, or the root side of a test's veth pair) and stopped with
everything it wrote.

    with Coturn("127.0.0.1") as turn:
        iceServers = [turn.iceServer("udp")]
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

TURNSERVER = "turnserver"
INSTALL_HINT = "coturn is not installed (scripts/install-net-tools.sh installs Debian's package)"


class CoturnError(RuntimeError):
    pass


def freePort(ip: str, kinds: tuple[int, ...] = (socket.SOCK_STREAM, socket.SOCK_DGRAM)) -> int:
    """A port free for every socket type in ``kinds`` on ``ip`` (closed again at once)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kinds[0]) as first:
            first.bind((ip, 0))
            port: int = first.getsockname()[1]
            try:
                for kind in kinds[1:]:
                    with socket.socket(socket.AF_INET, kind) as other:
                        other.bind((ip, port))
            except OSError:
                continue
            return port
    raise CoturnError(f"no free port on {ip}")


def selfSignedCertificate(ip: str, directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``ip`` (as an IP subject alternative name) and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mediasoup-client test TURN")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certPath, keyPath = directory / "cert.pem", directory / "key.pem"
    certPath.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyPath.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return certPath, keyPath


class Coturn:
    def __init__(self, ip: str = "127.0.0.1", *, startTimeout: float = 10.0) -> None:
        self.ip = ip
        self.username = "msc"
        self.password = secrets.token_hex(8)
        self.realm = "mediasoup-client.test"
        self._startTimeout = startTimeout
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self.port = 0
        self.tlsPort = 0
        self.caFile: Path | None = None  # the self-signed certificate, to trust for turns:

    # URLs.
    def url(self, transport: str) -> str:
        """``udp``, ``tcp`` (turn:) or ``tls`` (turns:)."""
        if transport == "tls":
            return f"turns:{self.ip}:{self.tlsPort}?transport=tcp"
        return f"turn:{self.ip}:{self.port}?transport={transport}"

    def iceServer(self, transport: str, *, password: str | None = None) -> dict[str, Any]:
        return {
            "urls": [self.url(transport)],
            "username": self.username,
            "credential": self.password if password is None else password,
        }

    @property
    def logPath(self) -> Path:
        assert self._dir is not None
        return self._dir / "turn.log"

    def logText(self) -> str:
        try:
            return self.logPath.read_text(errors="replace")
        except (OSError, AssertionError):
            return ""

    # Life cycle.
    def start(self) -> Coturn:
        binary = shutil.which(TURNSERVER)
        if binary is None:
            raise CoturnError(INSTALL_HINT)
        self._dir = Path(tempfile.mkdtemp(prefix="msc-coturn-"))
        try:
            certPath, keyPath = selfSignedCertificate(self.ip, self._dir)
            self.caFile = certPath
            self.port = freePort(self.ip)
            self.tlsPort = freePort(self.ip, (socket.SOCK_STREAM,))
            relayLow = 20000 + secrets.randbelow(100) * 100  # a random window of 100 ports
            config = [
                f"listening-ip={self.ip}",
                f"relay-ip={self.ip}",
                f"listening-port={self.port}",
                f"tls-listening-port={self.tlsPort}",
                f"min-port={relayLow}",
                f"max-port={relayLow + 99}",
                "lt-cred-mech",
                "fingerprint",
                f"realm={self.realm}",
                f"user={self.username}:{self.password}",
                f"userdb={self._dir / 'turndb'}",
                f"cert={certPath}",
                f"pkey={keyPath}",
                "no-dtls",
                "no-cli",
                "no-multicast-peers",
                "no-software-attribute",
                f"pidfile={self._dir / 'turn.pid'}",
                f"log-file={self.logPath}",
                "simple-log",
                "no-stdout-log",
            ]
            if ipaddress.ip_address(self.ip).is_loopback:
                # The SFU is on 127.0.0.1 too: coturn refuses loopback peers unless told.
                config.append("allow-loopback-peers")
            (self._dir / "turnserver.conf").write_text("\n".join(config) + "\n")
            self._process = subprocess.Popen(
                [binary, "-c", str(self._dir / "turnserver.conf")],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            self._waitListening()
        except BaseException:
            self.stop()
            raise
        return self

    def _waitListening(self) -> None:
        """Until both the TCP and the TLS listeners accept (the UDP one starts with them)."""
        deadline = time.monotonic() + self._startTimeout
        pending = [self.port, self.tlsPort]
        while pending:
            assert self._process is not None
            if self._process.poll() is not None:
                raise CoturnError(
                    f"turnserver exited ({self._process.returncode}):\n{self.logText()[-3000:]}"
                )
            try:
                with socket.create_connection((self.ip, pending[0]), timeout=0.5):
                    pending.pop(0)
                    continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise CoturnError(f"turnserver did not listen on {self.ip}:{pending[0]}")
            time.sleep(0.05)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        directory, self._dir = self._dir, None
        if directory is not None:
            self._lastLog = (
                (directory / "turn.log").read_text(errors="replace")
                if (directory / "turn.log").exists()
                else ""
            )
            shutil.rmtree(directory, ignore_errors=True)

    def kill(self) -> None:
        """Make the server vanish abruptly (it answers nothing more); ``stop`` still cleans."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=5)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> Coturn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
