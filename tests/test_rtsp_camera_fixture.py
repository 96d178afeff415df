"""The test RTSP camera itself (tests/support/rtsp.py): what other tests lean on must hold before they do.

Frames reach an OpenCV/FFmpeg reader over TCP and over UDP; basic authentication refuses a wrong or missing
password and lets the right one through; a restart serves again on the same port; a frozen server (SIGSTOP) sends
nothing and a resumed one sends again; in a network namespace it serves at the namespace's address and a link
taken down stops the stream. Readers run in subprocesses with timeouts, so no test can hang on a read.

Tests that only read share a camera per module (``camera``, put back running and unfrozen before each test;
``guarded``, TCP only behind basic auth): four cameras rather than seven.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from emotiond.core.procfs import command_line

from support.rtsp import FrameReader, RtspCamera, probe, read_frames, require_rtsp_server
from support.tools import require_tool

SIZE = {"width": 320, "height": 240}
SHAPE = [240, 320, 3]
FPS = 30  # the clip's
IN_FLIGHT = 0.5  # seconds after a freeze or a link cut in which frames already sent may still be read
SILENCE = 1.5  # seconds after IN_FLIGHT in which a frozen or cut-off camera must send nothing (45 frames if it did)
PASSWORD = "s3cret:/@pass"  # characters that need escaping in a URL


@pytest.fixture(scope="module")
def clip(videos: dict[str, Path]) -> Path:
    return videos["one_face"]  # 2 s of a moving face, looped by the camera


@pytest.fixture(scope="module")
def module_cameras(tmp_path_factory: pytest.TempPathFactory, clip: Path) -> Iterator[dict[str, RtspCamera]]:
    """The module's shared cameras, started on first use and killed after the module."""
    require_rtsp_server()
    folder = tmp_path_factory.mktemp("rtsp-fixture")
    cameras = {
        "plain": RtspCamera(clip, log=folder / "plain.log", **SIZE),
        "guarded": RtspCamera(clip, user="viewer", password=PASSWORD, protocols="tcp", log=folder / "guarded.log",
                              **SIZE),
    }
    try:
        yield cameras
    finally:
        for shared in cameras.values():
            shared.stop()


def _ready(shared: RtspCamera) -> RtspCamera:
    """The shared camera as a new one would be: running and not frozen (a failed test may leave it otherwise)."""
    if shared.frozen and shared.running:
        shared.resume()
    if not shared.running:
        shared.stop()
        shared.start()
    return shared


@pytest.fixture
def camera(module_cameras: dict[str, RtspCamera]) -> Iterator[RtspCamera]:
    """A camera serving ``clip`` over TCP and UDP, shared by the module: tests may freeze or restart it."""
    yield _ready(module_cameras["plain"])
    _ready(module_cameras["plain"])


@pytest.fixture
def guarded(module_cameras: dict[str, RtspCamera]) -> RtspCamera:
    """A camera that offers TCP only, behind basic auth as viewer / PASSWORD; tests only read from it."""
    return _ready(module_cameras["guarded"])


@pytest.fixture
def ffprobe() -> str:
    return require_tool("ffprobe", "ffmpeg", "probing the test RTSP camera")


def assert_moving_frames(frames: list[dict], count: int, context: str) -> None:
    assert len(frames) >= count, context
    assert all(frame["shape"] == SHAPE for frame in frames), context
    assert len({frame["crc"] for frame in frames}) > count // 2, f"the picture does not move: {context}"


def test_frames_arrive_over_tcp_and_over_udp(camera):
    readers = [FrameReader(camera.url(), transport, seconds=15, frames=20) for transport in ("tcp", "udp")]
    try:
        for reader in readers:
            assert reader.opened(), reader.describe()
            assert_moving_frames(reader.wait_frames(20, 15), 20, reader.describe())
    finally:
        for reader in readers:
            reader.stop()


def test_the_transport_is_the_readers_choice(guarded):
    """A camera that offers TCP only refuses a UDP reader with the right password: the UDP reader above really read
    over UDP."""
    url = guarded.url("viewer", PASSWORD)
    udp = read_frames(url, "udp", count=5, timeout=10)
    assert not udp.frames() and not any(e["event"] == "open" and e["ok"] for e in udp.events), udp.describe()
    tcp = read_frames(url, "tcp", count=5, timeout=10)
    assert_moving_frames(tcp.frames(), 5, tcp.describe())


def test_basic_auth_refuses_a_wrong_or_missing_password(guarded, ffprobe):
    camera, password = guarded, PASSWORD
    for url in (camera.url(), camera.url("viewer", "wrong"), camera.url("someone", password)):
        refused = probe(url)
        assert refused.returncode != 0 and "401" in refused.stderr, (url, refused.stderr)
    allowed = probe(camera.url("viewer", password))
    assert allowed.returncode == 0, allowed.stderr
    assert '"codec_name": "h264"' in allowed.stdout and '"width": 320' in allowed.stdout, allowed.stdout

    wrong = read_frames(camera.url("viewer", "wrong"), count=5, timeout=10)
    assert not wrong.frames(), wrong.describe()
    right = read_frames(camera.url("viewer", password), count=5, timeout=10)
    assert_moving_frames(right.frames(), 5, right.describe())
    # The password reached the server through its environment: argv, which ps shows, does not hold it.
    shown = command_line(camera.pid)
    assert shown is not None and password not in shown


def test_restart_serves_again_on_the_same_port(camera):
    url, pid = camera.url(), camera.pid
    with FrameReader(url, seconds=20, read_timeout=3) as before:
        assert before.opened(), before.describe()
        before.wait_frames(10, 10)
        killed = time.monotonic()
        camera.restart(delay=0.5)
        assert camera.url() == url and camera.pid != pid
        # The old stream ends (a failed read, or the reader giving up) rather than going on.
        before.wait_for(lambda events: any(e["event"] in ("fail", "end", "exit") and e["t"] > killed
                                           for e in events), 10)
        assert len(before.frames(after=killed + IN_FLIGHT)) == 0, before.describe()  # it was a real kill
    after = read_frames(url, count=10, timeout=10)
    assert_moving_frames(after.frames(), 10, after.describe())


def test_freeze_stops_frames_and_resume_brings_them_back(camera):
    with FrameReader(camera.url(), seconds=25, read_timeout=10) as reader:  # reads block through the freeze
        assert reader.opened(), reader.describe()
        assert len(reader.wait_frames(15, 10)) >= 15, reader.describe()
        camera.freeze()
        frozen = time.monotonic()
        time.sleep(IN_FLIGHT + SILENCE)  # a window in which nothing may come, not a wait for something
        assert not reader.frames(after=frozen + IN_FLIGHT), reader.describe()
        camera.resume()
        resumed = time.monotonic()
        back = reader.wait_frames(30, 10, after=resumed)
        assert_moving_frames(back, 30, reader.describe())
        assert not reader.failures(), reader.describe()
        # A camera shows the present: no burst of the 2 s it was stopped (60 frames) once it goes on. A burst
        # comes first, so the 30th frame after the resume would arrive at once; live, it takes about a second.
        took = back[29]["t"] - resumed
        assert len(back[:30]) < FPS * took + 20, (took, reader.describe())


def test_a_read_from_a_frozen_camera_returns_after_the_read_timeout(camera):
    """With the server stopped a read blocks until CAP_PROP_READ_TIMEOUT_MSEC, not forever. (What it returns
    then is not a failure at first: FFmpeg hands out the frames still inside its decoder, ok=True.)"""
    with FrameReader(camera.url(), seconds=20, read_timeout=2.0) as reader:
        assert reader.opened(), reader.describe()
        reader.wait_frames(10, 10)
        camera.freeze()
        frozen = time.monotonic()

        def blocked_read(events: list[dict]) -> bool:
            return any(e["event"] in ("frame", "fail") and e["t"] > frozen + IN_FLIGHT for e in events)

        assert reader.wait_for(blocked_read, 6.0), reader.describe()
        read = next(e for e in reader.events if e["event"] in ("frame", "fail") and e["t"] > frozen + IN_FLIGHT)
        assert 1.5 <= read["t"] - frozen <= 4.0, (read, reader.describe())
        camera.resume()


def test_in_a_namespace_it_serves_at_its_address_and_a_link_down_stops_it(rtsp_camera, clip):
    camera = rtsp_camera(clip, netns=True, **SIZE)
    namespace = camera.netns
    assert camera.host == namespace.address and namespace.address.startswith("10.231.")
    assert f"rtsp://{namespace.address}:{camera.port}/cam" == camera.url()
    # Only there: nothing listens on the host's loopback at that port.
    loopback = read_frames(camera.url().replace(namespace.address, "127.0.0.1"), count=1, timeout=5)
    assert not loopback.frames(), loopback.describe()

    with FrameReader(camera.url(), "tcp", seconds=25, read_timeout=10) as reader:
        assert reader.opened(), reader.describe()
        assert_moving_frames(reader.wait_frames(15, 10), 15, reader.describe())
        camera.link_down()
        down = time.monotonic()
        assert not namespace.link_is_up
        time.sleep(IN_FLIGHT + SILENCE)  # a window in which nothing may come, not a wait for something
        assert not reader.frames(after=down + IN_FLIGHT), reader.describe()
        camera.link_up()
        up = time.monotonic()
        assert_moving_frames(reader.wait_frames(15, 8, after=up), 15, reader.describe())
