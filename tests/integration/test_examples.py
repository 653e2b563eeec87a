"""The runnable examples under examples/ run against the local SFU and do what they say."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mediasoup_client.signaling.local_sfu import LocalSfu

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def runExample(name: str, sfu: LocalSfu, *args: str) -> str:
    url = f"ws://127.0.0.1:{sfu.port}/?roomId={uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), url, *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def number(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    assert found is not None, (pattern, text)
    return int(found.group(1))


def test_push_video_frames_come_back_as_arrays(sfu: LocalSfu) -> None:
    out = runExample("push_video.py", sfu, "--seconds", "3")
    assert number(r"done: (\d+) frames of 640x360 received", out) >= 45, out
    assert number(r"the last was #(\d+)", out) >= 60, out


def test_push_audio_is_heard_and_the_barge_in_clears_the_queue(sfu: LocalSfu) -> None:
    out = runExample("push_audio.py", sfu, "--seconds", "5")
    assert re.search(r"hearing +330 Hz", out), out
    assert "(320 samples per chunk)" in out
    assert "agent: interrupted, queue cleared" in out
    assert re.search(r"done: \d+ chunks of 20 ms received \(0 dropped\)", out), out


def test_fanout_encodes_once_for_two_transports(sfu: LocalSfu) -> None:
    out = runExample("fanout.py", sfu, "--seconds", "3")
    lines = re.findall(r"producer \d: ssrc (\d+), encoderShared (\d+), (\d+) frames received", out)
    assert len(lines) == 2 and lines[0][0] != lines[1][0], out
    assert [shared for _ssrc, shared, _frames in lines] == ["2", "2"], out
    assert all(int(frames) >= 60 for _ssrc, _shared, frames in lines), out


def test_passthrough_sends_a_file_that_decodes(sfu: LocalSfu, tmp_path: Path) -> None:
    from mediasoup_client.media.test_sources import writeTestFile

    clip = writeTestFile(str(tmp_path / "clip.mp4"), width=320, height=240, seconds=2)
    out = runExample("passthrough.py", sfu, "--file", clip, "--seconds", "3")
    assert "producer codec: video/H264" in out
    assert number(r"done: (\d+) frames of 320x240 decoded", out) >= 45, out
    assert "sent by passthrough" in out


def test_own_encoder_answers_key_frame_requests(sfu: LocalSfu) -> None:
    out = runExample("own_encoder.py", sfu, "--seconds", "3")
    assert "key frame requested: the next frame is an IDR" in out
    assert number(r"done: (\d+) frames decoded", out) >= 45, out
    assert number(r"(\d+) key frames made", out) >= 1


@pytest.mark.parametrize("name", ["push_video.py", "push_audio.py", "passthrough.py"])
def test_examples_explain_themselves(name: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "ROOM_URL" not in result.stderr
    assert "--seconds" in result.stdout
