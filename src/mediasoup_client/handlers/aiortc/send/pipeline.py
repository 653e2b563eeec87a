"""What the pure send core hands to its driver: actions (packets to send, encode jobs to run),
and the one protocol every media pipeline (audio, video) implements.

Cores never read the clock, sleep, or own tasks: every input carries ``now`` (monotonic
seconds) and every output is a ``SendActions``. The asyncio driver (``scheduler.py``) runs the
encode jobs on its executor (or inline, when a job says it is cheap), sends the packets, and
feeds the results back with ``onEncoded``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .bitrate import ProducerDemand
from .rtp_stream import OutgoingRtp

Stats = dict[str, Any]


@dataclass(slots=True)
class EncodeJob:
    """Work for an encoder: ``run()`` is called once, in a worker thread unless ``inline``;
    its result (or exception) goes back to ``owner``'s pipeline through ``onEncoded``."""

    owner: object
    epoch: int
    run: Callable[[], Any]
    inline: bool = False
    pool: str = "video"  # which encoder threads: audio never waits behind a video frame
    # A shared encoder's job: its result is every member producer's, so it is delivered even
    # when the producer whose frame started it has closed meanwhile.
    shared: bool = False


@dataclass(slots=True)
class RunState:
    """What a pipeline's sending depends on besides bandwidth, kept the same way by all of
    them: ``started`` (start .. stop), ``paused`` (pause .. resume), ``muted`` (a paused
    producer's track replaced by black or silence, see ``PauseMode``) and ``hasTrack`` (False
    after ``replaceTrack(None)``)."""

    started: bool = False
    paused: bool = False
    muted: bool = False
    hasTrack: bool = True

    @property
    def flowing(self) -> bool:
        """The track's media is wanted: started, not paused, and there is a track."""
        return self.started and not self.paused and self.hasTrack


@dataclass(slots=True)
class SendActions:
    packets: list[OutgoingRtp] = field(default_factory=list)
    jobs: list[EncodeJob] = field(default_factory=list)

    def add(self, other: SendActions) -> SendActions:
        self.packets.extend(other.packets)
        self.jobs.extend(other.jobs)
        return self

    def __bool__(self) -> bool:
        return bool(self.packets or self.jobs)


class MediaPipeline(Protocol):
    """One producer's media: reads frames, decides what to encode and when, packetises.

    Controls take effect at once: ``pause`` drops whatever is queued or being encoded;
    ``mute`` replaces the source by black video or silence (a disabled track); coming back
    from either starts video with a key frame and audio with a new talk spurt.
    """

    def start(self, now: float) -> None: ...

    def stop(self) -> None: ...

    def onFrame(self, frame: Any, now: float) -> SendActions: ...

    def onEncoded(
        self, job: EncodeJob, result: Any, error: BaseException | None, now: float
    ) -> SendActions: ...

    def pause(self, now: float) -> None: ...

    def resume(self, now: float) -> None: ...

    def mute(self, muted: bool, now: float) -> None: ...

    def replaceTrack(self, present: bool, now: float) -> None: ...

    def setParameters(self, changes: list[dict[str, Any]], now: float) -> None: ...

    def requestKeyFrame(self, ssrc: int | None, now: float) -> None: ...

    def demand(self, now: float) -> ProducerDemand:
        """What the producer claims of the transport's estimate (audio: a fixed rate; video:
        its active layers)."""
        ...

    def setBitrateBudget(
        self, budget: int | None, now: float, *, congested: bool = False,
        resumeBudget: int | None = None,
    ) -> None:  # fmt: skip
        """The producer's share of the estimate (None: no limit); ``resumeBudget``: its share
        of what the link has shown it carries (layers suspended for bandwidth come back only
        within that)."""
        ...

    def stats(self, now: float, timestamp: float, codecId: str) -> list[Stats]:
        """One outbound-rtp entry per encoding (``timestamp`` in ms of wall time)."""
        ...
