"""Source faults for real: a network stream served by ffmpeg that dies, freezes and comes back, a live source
that never opens, and video files cut short or damaged. (A webcam this machine does not have is refused at
start: tests/test_camera_missing.py.)"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from emotiond.core import protocol

from support.daemon import free_port, metric_value, wait_for
from support.streams import StreamServer
from support.tools import require_tool

FAST_BACKOFF = {"EMOTIOND_CAPTURE__RECONNECT_INITIAL_SECONDS": "0.2",
                "EMOTIOND_CAPTURE__RECONNECT_MAX_SECONDS": "1.6"}


@pytest.fixture
def stream_server(videos) -> Iterator[StreamServer]:
    ffmpeg = require_tool("ffmpeg", "ffmpeg", "serving a network stream")
    server = StreamServer(ffmpeg, videos["one_face"], free_port())
    server.start()
    yield server
    server.kill()


def _statuses_after(watcher, state: str, since_wall: float) -> list[protocol.Status]:
    return [s for s in watcher.statuses(state) if s.at >= since_wall]


def _up(daemon, camera: str) -> float:
    return metric_value(daemon.metrics_text(), "emotiond_source_up", camera=camera)


def test_network_stream_that_dies_and_returns_is_reconnected(start_daemon, watch, stream_server, default_model):
    # DEBUG: a source that stays down logs each retry only there (WARNING says it once per change of state)
    daemon = start_daemon("--source", f"net={stream_server.url}",
                          env={**FAST_BACKOFF, "EMOTIOND_LOGGING__LEVEL": "DEBUG"})
    daemon.wait_ready()
    watcher = watch(daemon.results_endpoint)
    wait_for(lambda: watcher.results_after(0), 20, what="results from the stream")
    assert _up(daemon, "net") == 1

    # 1. the server dies: the source is marked down, reopening backs off exponentially
    killed = time.time()
    stream_server.kill()
    wait_for(lambda: _statuses_after(watcher, "down", killed), 10, what="down status")
    wait_for(lambda: _up(daemon, "net") == 0, 5, what="source_up 0")
    # the fifth failure is counted after the fourth retry delay was logged
    wait_for(lambda: daemon.metric("emotiond_source_errors_total", camera="net", reason="open_failed") >= 5, 20,
             what="five failed reopening attempts")
    delays = [float(d) for d in re.findall(r"source net: .*; retrying in ([\d.]+)s", daemon.log())]
    assert delays[:4] == [0.2, 0.4, 0.8, 1.6], delays
    assert len(re.findall(r" WARNING .*source net: .*; retrying in", daemon.log())) == 1

    # 2. it comes back: up again, frames resume
    restarted_wall, restarted = time.time(), time.monotonic()
    stream_server.start()
    wait_for(lambda: watcher.results_after(restarted_wall), 15, what="results after the stream returned")
    reconnect = time.monotonic() - restarted
    assert _statuses_after(watcher, "up", restarted_wall)
    assert _up(daemon, "net") == 1
    assert metric_value(daemon.metrics_text(), "emotiond_source_errors_total", camera="net") >= 3
    down_after = min(s.at for s in _statuses_after(watcher, "down", killed)) - killed
    print(f"stream killed: down status after {down_after:.2f}s; server back -> results after {reconnect:.2f}s "
          f"(backoff cap 1.6 s); retry delays {delays}")

    # 3. the server freezes without closing the connection: the read timeout notices
    frozen = time.time()
    stream_server.process.send_signal(signal.SIGSTOP)
    wait_for(lambda: _statuses_after(watcher, "down", frozen), 15, what="down status after a frozen server")
    print(f"stream frozen (no FIN): down status after {time.time() - frozen:.2f}s")
    stream_server.kill()
    back = time.time()
    stream_server.start()
    wait_for(lambda: watcher.results_after(back), 15, what="results after the frozen stream was replaced")
    assert daemon.stop() == 0


def test_a_live_source_that_never_opens_is_reported_once_and_retried(start_daemon, default_model):
    url = f"http://127.0.0.1:{free_port()}/cam"  # nothing listens there
    daemon = start_daemon("--source", f"cam={url}", env=FAST_BACKOFF)
    daemon.wait_for(lambda: daemon.metric("emotiond_source_errors_total", camera="cam", reason="open_failed") >= 4,
                    20, what="four failed attempts to open")
    assert len(re.findall(r"source cam: .*retrying", daemon.log())) == 1  # once per change of state
    assert f"cannot open stream {url}" in daemon.log()
    assert daemon.process.poll() is None
    # (its one "down" status may go out before a subscriber has connected; the stream test above sees one)
    text = daemon.metrics_text()
    assert metric_value(text, "emotiond_source_up", camera="cam") == 0
    assert metric_value(text, "emotiond_source_errors_total", camera="cam", reason="open_failed") >= 3
    assert daemon.stop() == 0


@pytest.fixture(scope="module")
def damaged_videos(tmp_path_factory, videos) -> dict[str, Path]:
    """An MJPEG AVI of the test scene, cut in half, and one with a run of zeroed bytes in the middle."""
    ffmpeg = require_tool("ffmpeg", "ffmpeg", "making damaged video files")
    root = tmp_path_factory.mktemp("damaged")
    whole = root / "whole.avi"
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", str(videos["one_face"]),
                    "-c:v", "mjpeg", "-q:v", "5", str(whole)], check=True)
    data = whole.read_bytes()
    truncated = root / "truncated.avi"
    truncated.write_bytes(data[: len(data) // 2])
    corrupt = root / "corrupt.avi"
    middle = len(data) // 3
    corrupt.write_bytes(data[:middle] + bytes(20000) + data[middle + 20000:])
    return {"truncated": truncated, "corrupt": corrupt}


@pytest.mark.parametrize("kind", ["truncated", "corrupt"])
def test_damaged_file_is_processed_as_far_as_readable(kind, start_daemon, events, damaged_videos, default_model):
    daemon = start_daemon("--source", f"bad={damaged_videos[kind]}")
    reader = events(daemon, "--until-eos", "--status", "--timeout", "60")
    assert daemon.process.wait(60) == 0, daemon.log()[-2000:]
    lines = reader.wait(10)
    results = [line for line in lines if "status" not in line]
    errors = [line["status"] for line in lines if "status" in line and line["status"]["state"] == "error"]
    assert 20 <= len(results) < 60, len(results)
    assert sorted(r["seq"] for r in results) == list(range(len(results)))
    assert errors and "of 60 frames" in errors[0]["message"], lines[-3:]
    print(f"{kind} file: {len(results)} of 60 frames processed; error status: {errors[0]['message']}")
