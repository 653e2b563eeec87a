"""Lets ``consume --room ID`` find the local SFU a running ``produce`` started.

``produce`` (without a URL) records its SFU's port in a small per-user state file while it runs;
``consume --room ID`` (without a URL) reads it. Nothing here is needed with an explicit URL.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from ..signaling.local_sfu import watchPageUrl


def stateFile() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"mediasoup-client-{os.getuid()}" / "local-sfu.json"


def publish(port: int) -> None:
    path = stateFile()
    with contextlib.suppress(OSError):
        path.parent.mkdir(mode=0o700, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"port": port, "pid": os.getpid()}))
        temporary.replace(path)


def unpublish() -> None:
    """Remove the record if it is still ours (a later ``produce`` may have replaced it)."""
    path = stateFile()
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


def find() -> int | None:
    """The port of the local SFU of a running ``produce``, if there is one."""
    try:
        state = json.loads(stateFile().read_text())
        port, pid = int(state["port"]), int(state["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, someone else's
    return port


def watchUrl(roomUrl: str) -> str | None:
    """The browser page to watch ``roomUrl``'s room, when the room is on the local SFU of this
    machine (a produce without a URL started it); other servers have no such page."""
    parts = urlsplit(roomUrl)
    if parts.hostname not in ("127.0.0.1", "localhost") or parts.port != find():
        return None
    return watchPageUrl(roomUrl)
