"""One producer's send path on a fake clock, an in-memory port and inline encoders.

Frames are pushed by the test (``feed``) at a media rate while the fake clock moves the same
amount, so a second of media takes only as long as encoding it, and nothing sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiortc.rtp import RtpPacket

from mediasoup_client.handlers.aiortc.send.cc.controller import CongestionOptions
from mediasoup_client.handlers.aiortc.send.config import sendConfig
from mediasoup_client.handlers.aiortc.send.producer_sender import PauseMode, ProducerSender
from mediasoup_client.handlers.aiortc.send.scheduler import (
    EndedCallback,
    FrameCallback,
    InlineJobRunner,
    ScheduledProducer,
    SendScheduler,
)
from tests.unit.fake_clock import FakeClock
from tests.unit.fake_link import FakeLink
from tests.unit.fake_rtp_port import FakeRtpPort


class ManualReader:
    """A track reader the test drives: ``push`` delivers a frame, ``end`` ends the track."""

    def __init__(self, track: Any, onFrame: FrameCallback, onEnded: EndedCallback) -> None:
        self.track = track
        self.onFrame = onFrame
        self.onEnded = onEnded
        self.started = False
        self.stopped = False

    def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True


class SendHarness:
    def __init__(
        self,
        params: dict[str, Any],
        track: Any,
        *,
        codecOptions: dict[str, Any] | None = None,
        pauseMode: PauseMode = PauseMode.ZERO_RTP,
        connected: bool = True,
        congestion: CongestionOptions | None = None,
        link: dict[str, Any] | None = None,
    ) -> None:
        self.params = params
        self.track = track
        self.clock = FakeClock()
        self.port = FakeRtpPort(connected=connected, clock=self.clock)
        self.readers: list[ManualReader] = []
        self.ended = 0
        self.scheduler = SendScheduler(
            self.port,
            clock=self.clock,
            runner=InlineJobRunner(),
            readerFactory=self._reader,
            congestion=congestion,
        )
        # A bottleneck and a receiver answering with transport feedback (``FakeLink``).
        self.link = FakeLink(self.clock, self.port, **link) if link is not None else None
        self.sender = ProducerSender(
            sendConfig(params, codecOptions),  # type: ignore[arg-type]
            pauseMode=pauseMode,
        )
        self.producer: ScheduledProducer = self.scheduler.add(
            self.sender, track, onTrackEnded=self._onEnded
        )
        self.producer.start()

    def addProducer(
        self, params: dict[str, Any], track: Any, *, codecOptions: dict[str, Any] | None = None
    ) -> tuple[ScheduledProducer, ManualReader]:
        """Another producer on the same transport (scheduler, pacer, estimate); its reader."""
        sender = ProducerSender(sendConfig(params, codecOptions))  # type: ignore[arg-type]
        producer = self.scheduler.add(sender, track, onTrackEnded=self._onEnded)
        producer.start()
        # Kept apart: ``reader`` stays the first producer's.
        return producer, self.readers.pop()

    def _reader(self, track: Any, onFrame: FrameCallback, onEnded: EndedCallback) -> ManualReader:
        reader = ManualReader(track, onFrame, onEnded)
        self.readers.append(reader)
        return reader

    def _onEnded(self) -> None:
        self.ended += 1

    @property
    def reader(self) -> ManualReader:
        return self.readers[-1]

    @property
    def ssrcs(self) -> list[int]:
        return [e["ssrc"] for e in self.params["encodings"]]

    def push(self, frame: Any, advance: float) -> None:
        """Deliver one frame, then let ``advance`` seconds pass."""
        self.reader.onFrame(frame)
        self.clock.advance(advance)

    def feed(
        self,
        seconds: float,
        *,
        source: Any = None,
        rate: float | None = None,
        until: Callable[[], bool] | None = None,
    ) -> None:
        """Push ``seconds`` of media from ``source`` (default: the track's ``nextFrame``) at
        its nominal rate, or stop early once ``until()`` holds."""
        track = source if source is not None else self.reader.track
        interval = 1 / (rate or getattr(track, "fps", None) or 50)
        steps = round(seconds / interval)
        for _ in range(steps):
            self.push(track.nextFrame(), interval)
            if until is not None and until():
                return
        if until is not None:
            raise AssertionError(f"condition not met within {seconds} s of media")

    def wait(self, seconds: float) -> None:
        """Let time pass with no frames (timers fire)."""
        self.clock.advance(seconds)

    def packets(self, layer: int = 0) -> list[RtpPacket]:
        return self.port.packets(self.ssrcs[layer])

    def getStats(self) -> dict[str, Any]:
        return self.producer.getStats()
