"""Audio format, layout, rate and frame-size conversion on one thread.

PyAV's ``AudioResampler`` builds an FFmpeg filter graph with the automatic thread count, and
FFmpeg starts a thread pool for it (two threads on a 2-core machine) that lives as long as
the resampler: per Opus producer that was ~66 KiB of RSS for work that takes microseconds
per frame. This does the same conversion with a graph limited to the calling thread, and
starts over when the input's format changes instead of raising.
"""

from __future__ import annotations

import fractions

import av
from av.filter import Graph


class AudioConverter:
    """Frames in, frames of ``format``/``layout``/``rate`` out (``frameSize`` samples each
    when given, buffering the rest for the next call)."""

    def __init__(self, format: str, layout: str, rate: int, frameSize: int | None = None) -> None:
        self.format = format
        self.layout = layout
        self.rate = rate
        self.frameSize = frameSize
        self._graph: Graph | None = None
        self._input: tuple[str, str, int] | None = None

    def convert(self, frame: av.AudioFrame) -> list[av.AudioFrame]:
        source = (frame.format.name, frame.layout.name, frame.sample_rate)
        if source != self._input:
            if self._passes(source):
                self._input, self._graph = source, None
            else:
                self._graph = self._build(frame)
                self._input = source
        if self._graph is None:
            return [frame]
        self._graph.push(frame)
        out: list[av.AudioFrame] = []
        while True:
            try:
                converted = self._graph.pull()
            except (av.error.BlockingIOError, EOFError):
                break  # needs more input
            assert isinstance(converted, av.AudioFrame)
            out.append(converted)
        return out

    def _passes(self, source: tuple[str, str, int]) -> bool:
        return source == (self.format, self.layout, self.rate) and not self.frameSize

    def _build(self, frame: av.AudioFrame) -> Graph:
        graph = Graph()
        graph.threads = 1  # before the first filter: no thread pool
        timeBase = frame.time_base or fractions.Fraction(1, frame.sample_rate)
        source = graph.add(
            "abuffer",
            sample_rate=str(frame.sample_rate),
            sample_fmt=frame.format.name,
            channel_layout=frame.layout.name,
            time_base=str(timeBase),
        )
        target = graph.add(
            "aformat", sample_rates=str(self.rate), sample_fmts=self.format,
            channel_layouts=self.layout,
        )  # fmt: skip
        sink = graph.add("abuffersink")
        source.link_to(target)
        target.link_to(sink)
        graph.configure()
        if self.frameSize:
            graph.set_audio_frame_size(self.frameSize)
        return graph
