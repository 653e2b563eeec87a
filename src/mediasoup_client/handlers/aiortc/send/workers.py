"""Worker threads for encoding. PyAV releases the GIL while encoding and scaling, so encoding
off the event loop uses every core. Audio has its own small pool so a slow video frame never
delays audio."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

_lock = threading.Lock()
_video: ThreadPoolExecutor | None = None
_audio: ThreadPoolExecutor | None = None


def videoExecutor() -> ThreadPoolExecutor:
    global _video
    with _lock:
        if _video is None:
            # Each layer has at most one job in flight, so the pool's queue stays bounded by
            # the number of layers alive; one thread per core keeps every core busy.
            _video = ThreadPoolExecutor(
                max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="msc-video-encode"
            )
        return _video


def audioExecutor() -> ThreadPoolExecutor:
    global _audio
    with _lock:
        if _audio is None:
            _audio = ThreadPoolExecutor(max_workers=2, thread_name_prefix="msc-audio-encode")
        return _audio
