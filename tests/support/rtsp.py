"""A real RTSP camera for the tests, and readers that watch its stream the way the daemon does (OpenCV/FFmpeg).

``RtspCamera`` runs benchmarks/rtsp_server.py (GStreamer's RTSP server, under Debian's /usr/bin/python3) as a
subprocess serving a video file as H.264, looping endlessly, and can restart it on the same port, freeze it
(SIGSTOP) and resume it, or, run inside a network namespace, cut its link. The ``rtsp_camera`` fixture starts
cameras and always stops them, even after a failure; a test module takes it with
``from support.rtsp import rtsp_camera  # noqa: F401``.

``FrameReader`` reads the stream with ``cv2.VideoCapture(url, cv2.CAP_FFMPEG)`` in a subprocess (so the test never
hangs on a read, and because OPENCV_FFMPEG_CAPTURE_OPTIONS, which picks the transport, is read when a capture
opens) and reports every read with its time. ``probe`` asks ffprobe, whose errors name the RTSP status (401...).
"""

from __future__ import annotations

import functools
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import pytest

import emotiond.benchmarks

from support.netns import NetNamespace, network_namespace

# Ships with the package: the camera benchmark (benchmarks/bench_cameras.py) serves its videos with it too.
SERVER_SCRIPT = Path(emotiond.benchmarks.__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-gi: the venv has no GObject introspection
PASSWORD_ENV = "RTSP_SERVER_PASSWORD"  # rtsp_server.py's default --password-env
DEBIAN_PACKAGES = ("python3-gi", "gir1.2-gst-rtsp-server-1.0", "gstreamer1.0-plugins-base",
                   "gstreamer1.0-plugins-good", "gstreamer1.0-plugins-ugly", "gstreamer1.0-libav")
READY_TIMEOUT = 30.0

_CHECK_SERVER = """
import gi
gi.require_version("Gst", "1.0"); gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
missing = [name for name in ("appsrc", "decodebin", "videoconvert", "videoscale", "qtdemux", "x264enc",
                             "rtph264pay", "avdec_mpeg4") if Gst.ElementFactory.find(name) is None]
assert not missing, "GStreamer elements missing: " + ", ".join(missing)
"""


_ESTABLISHED = "01"  # a TCP state in /proc/net/tcp


def _proc_net_address(host: str) -> str:
    """An IPv4 address as /proc/net/tcp writes it: the 32-bit value in host byte order, in hex."""
    return f"{int.from_bytes(socket.inet_aton(host), sys.byteorder):08X}"


@functools.cache
def server_missing() -> str | None:
    """Why the RTSP server cannot run here, or None when it can."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} is missing"
    done = subprocess.run([SYSTEM_PYTHON, "-c", _CHECK_SERVER], capture_output=True, text=True, timeout=60)
    return None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["failed"])[-1]


def require_rtsp_server() -> None:
    """Fails the test, naming the Debian packages to install, when the RTSP server cannot run here."""
    why = server_missing()
    if why is not None:
        pytest.fail(f"the test RTSP camera cannot run: {why}. Install the Debian packages "
                    f"{' '.join(DEBIAN_PACKAGES)} (`make deps` installs them).", pytrace=False)


class RtspCamera:
    """The RTSP server as a subprocess: ``start()``, ``url()``, ``restart()``, ``freeze()``/``resume()``,
    ``stop()``; with ``netns``, it runs inside that namespace, at its address, and ``link_down()``/``link_up()``
    cut and restore the link to it.

    ``port=0`` takes a free port at the first start; every restart keeps the port the first start got.
    """

    def __init__(self, video: Path | str, *, port: int = 0, address: str | None = None, mount: str = "/cam",
                 user: str | None = None, password: str | None = None, fps: float | None = None,
                 width: int | None = None, height: int | None = None, protocols: str = "tcp,udp",
                 netns: NetNamespace | None = None, log: Path | None = None) -> None:
        if (user is None) != (password is None):
            raise ValueError("user and password go together")
        self.video = Path(video)
        self.port = port
        self.netns = netns
        self.address = address or (netns.address if netns is not None else "127.0.0.1")
        wildcard = self.address == "0.0.0.0"  # where a client reaches a server bound to every address
        self.host = (netns.address if netns is not None else "127.0.0.1") if wildcard else self.address
        self.mount = mount
        self.user, self.password = user, password
        self.fps, self.width, self.height = fps, width, height
        self.protocols = protocols
        self._own_log = log is None
        if log is None:
            descriptor, name = tempfile.mkstemp(prefix="rtsp-server-", suffix=".log")
            os.close(descriptor)
            log = Path(name)
        self.log = log
        self.process: subprocess.Popen | None = None
        self.frozen = False

    # ------------------------------------------------------------ lifecycle

    def command(self) -> list[str]:
        argv = [SYSTEM_PYTHON, str(SERVER_SCRIPT), str(self.video), "--port", str(self.port), "--address",
                self.address, "--mount", self.mount, "--protocols", self.protocols]
        if self.fps:
            argv += ["--fps", str(self.fps)]
        if self.width and self.height:
            argv += ["--width", str(self.width), "--height", str(self.height)]
        if self.user is not None:
            argv += ["--user", self.user, "--password-env", PASSWORD_ENV]
        return argv

    def start(self, timeout: float = READY_TIMEOUT) -> RtspCamera:
        """Starts the server and waits for it to listen. A port taken by a dying predecessor is retried."""
        if self.running:
            raise RuntimeError("the camera is running already")
        deadline = time.monotonic() + timeout
        while True:
            error = self._start_once(deadline)
            if error is None:
                return self
            if self.port == 0 or "cannot listen" not in error or time.monotonic() > deadline:
                raise RuntimeError(error)
            time.sleep(0.2)

    def _start_once(self, deadline: float) -> str | None:
        env = {**os.environ}
        env.pop(PASSWORD_ENV, None)
        if self.password is not None:
            env[PASSWORD_ENV] = self.password
        for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):  # Debian's python3 with its own dist-packages
            env.pop(name, None)
        with self.log.open("a") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} starting on port {self.port}\n")
            log.flush()
            kwargs: dict[str, Any] = dict(stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, env=env,
                                          text=True, start_new_session=True)
            if self.netns is not None:
                self.process = self.netns.popen(self.command(), **kwargs)
            else:
                self.process = subprocess.Popen(self.command(), **kwargs)
        self.frozen = False
        line = ""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.1)
            if ready:
                line = self.process.stdout.readline()
                if line.startswith("ready "):
                    self.port = int(line.split()[1])
                    return None
                if not line:  # the server exited before listening
                    break
        self._kill()
        return f"the RTSP server did not become ready ({line.strip() or 'no ready line'}); its log:\n" \
               f"{self.log_tail()}"

    def _kill(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # also ends a stopped (frozen) process
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
        self.frozen = False

    def stop(self) -> None:
        """Kills the server (SIGKILL: also a frozen one) and waits for it. Safe to call twice."""
        self._kill()

    def close(self) -> None:
        """Stops the server and removes a log this camera made itself."""
        self.stop()
        if self._own_log:
            self.log.unlink(missing_ok=True)

    def restart(self, delay: float = 0.0, timeout: float = READY_TIMEOUT) -> RtspCamera:
        """Kills the server (as a power cut: no goodbye to clients), waits ``delay`` s, starts it on the same
        port."""
        self.stop()
        if delay > 0:
            time.sleep(delay)
        return self.start(timeout)

    def freeze(self) -> None:
        """SIGSTOP: the server holds its sockets open but sends and answers nothing, as a hung camera."""
        self._signal(signal.SIGSTOP)
        self.frozen = True

    def resume(self) -> None:
        self._signal(signal.SIGCONT)
        self.frozen = False

    def _signal(self, signum: int) -> None:
        if not self.running:
            raise RuntimeError("the camera is not running")
        os.kill(self.process.pid, signum)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    # ------------------------------------------------------------ network (namespace only)

    def link_down(self) -> None:
        self._namespace().link_down()

    def link_up(self) -> None:
        self._namespace().link_up()

    def _namespace(self) -> NetNamespace:
        if self.netns is None:
            raise RuntimeError("this camera does not run in a network namespace (start it with netns=...)")
        return self.netns

    # ------------------------------------------------------------ clients

    def client_ports(self) -> set[int]:
        """Local ports of this host's established TCP connections to the camera (its RTSP sessions, as the client
        side sees them). A client that connects while the camera is frozen shows here too: the kernel completes
        the handshake for the stopped server, so a new port is the event "a client is (re)connecting"."""
        remote = f"{_proc_net_address(self.host)}:{self.port:04X}"
        ports = set()
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[2] == remote and fields[3] == _ESTABLISHED:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        return ports

    # ------------------------------------------------------------ addresses

    def url(self, user: str | None = None, password: str | None = None, mount: str | None = None) -> str:
        """rtsp://[user[:password]@]host:port/cam. Credentials are percent-encoded."""
        credentials = ""
        if user is not None:
            credentials = urllib.parse.quote(user, safe="")
            if password is not None:
                credentials += ":" + urllib.parse.quote(password, safe="")
            credentials += "@"
        return f"rtsp://{credentials}{self.host}:{self.port}{mount or self.mount}"

    def authorized_url(self) -> str:
        """The URL with this camera's own credentials, if it has any."""
        return self.url(self.user, self.password)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def __enter__(self) -> RtspCamera:
        return self.start() if not self.running else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "frozen" if self.frozen else ("running" if self.running else "stopped")
        return f"<RtspCamera {self.url()} {state} pid={self.pid}>"


@pytest.fixture
def rtsp_camera(tmp_path: Path) -> Iterator[Callable[..., RtspCamera]]:
    """``start(video, *, netns=False, **RtspCamera options) -> RtspCamera``, started and ready. Every camera is
    killed at teardown, even after a failure, and then the namespaces made for them are deleted. Server logs are
    tmp_path/rtsp-server-N.log."""
    require_rtsp_server()
    cameras: list[RtspCamera] = []
    with ExitStack() as stack:
        def start(video: Path | str, *, netns: bool | NetNamespace = False, **options: Any) -> RtspCamera:
            namespace = stack.enter_context(network_namespace()) if netns is True else (netns or None)
            camera = RtspCamera(video, netns=namespace, log=tmp_path / f"rtsp-server-{len(cameras)}.log",
                                **options)
            cameras.append(camera)
            return camera.start()

        try:
            yield start
        finally:
            for camera in cameras:
                camera.stop()


# ---------------------------------------------------------------- clients

_READER = r"""
import json, sys, time, zlib
import cv2
url, open_ms, read_ms, seconds, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), \
    int(sys.argv[5])
def say(**event):
    print(json.dumps(event), flush=True)
start = time.monotonic()
capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, open_ms,
                                                 cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms])
say(event="open", ok=capture.isOpened(), t=time.monotonic(), took=time.monotonic() - start)
if not capture.isOpened():
    sys.exit(2)
count = 0
while time.monotonic() - start < seconds and count < limit:
    before = time.monotonic()
    ok, frame = capture.read()
    after = time.monotonic()
    if ok:
        count += 1
        say(event="frame", t=after, took=after - before, shape=list(frame.shape),
            crc=zlib.crc32(frame[::4, ::4].tobytes()))
    else:
        say(event="fail", t=after, took=after - before)
        time.sleep(0.05)
capture.release()
say(event="end", frames=count, t=time.monotonic())
"""


class FrameReader:
    """``cv2.VideoCapture(url, cv2.CAP_FFMPEG)`` reading in a subprocess over ``transport`` ("tcp" or "udp"),
    for at most ``seconds`` or ``frames`` frames. Every read is an event: {"event": "open"|"frame"|"fail"|"end",
    "t": its time.monotonic() (one clock for all processes here), "took": how long the call blocked}.
    """

    def __init__(self, url: str, transport: str = "tcp", *, seconds: float = 20.0, frames: int = 10**9,
                 open_timeout: float = 10.0, read_timeout: float = 5.0) -> None:
        env = {**os.environ, "OPENCV_FFMPEG_CAPTURE_OPTIONS": f"rtsp_transport;{transport}"}
        self.url, self.transport = url, transport
        self.events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-c", _READER, url, str(int(open_timeout * 1000)), str(int(read_timeout * 1000)),
             str(seconds), str(frames)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env, text=True, start_new_session=True)
        self.stderr = ""
        self._threads = [threading.Thread(target=self._collect, daemon=True),
                         threading.Thread(target=self._collect_stderr, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _collect(self) -> None:
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()
        with self._changed:
            self.events.append({"event": "exit", "t": time.monotonic()})
            self._changed.notify_all()

    def _collect_stderr(self) -> None:
        self.stderr = self.process.stderr.read()

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.events), timeout)

    def opened(self, timeout: float = 15.0) -> bool:
        """Whether the capture opened (False when it failed to or said nothing within ``timeout``)."""
        self.wait_for(lambda events: any(e["event"] in ("open", "exit") for e in events), timeout)
        return any(e["event"] == "open" and e["ok"] for e in self.events)

    def frames(self, after: float = 0.0) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e["event"] == "frame" and e["t"] > after]

    def failures(self, after: float = 0.0) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e["event"] == "fail" and e["t"] > after]

    def wait_frames(self, count: int, timeout: float, after: float = 0.0) -> list[dict[str, Any]]:
        """The frames read after ``after``, once there are ``count`` of them or ``timeout`` s have passed."""
        def enough(events: list[dict[str, Any]]) -> bool:
            done = bool(events) and events[-1]["event"] == "exit"
            return done or sum(e["event"] == "frame" and e["t"] > after for e in events) >= count

        self.wait_for(enough, timeout)
        return self.frames(after)

    def stop(self) -> None:
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        for thread in self._threads:
            thread.join(5)

    def describe(self) -> str:
        """What the reader saw, for assertion messages."""
        if self.process.poll() is not None:
            self._threads[1].join(2)  # its stderr, complete
        kinds: dict[str, int] = {}
        for event in self.events:
            kinds[event["event"]] = kinds.get(event["event"], 0) + 1
        return f"reader {self.url} over {self.transport}: {kinds}; stderr: {self.stderr[-1500:]}"

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def read_frames(url: str, transport: str = "tcp", count: int = 10, timeout: float = 20.0) -> FrameReader:
    """Reads ``count`` frames (or until ``timeout``) and returns the finished reader."""
    reader = FrameReader(url, transport, seconds=timeout, frames=count, open_timeout=min(timeout, 10.0))
    try:
        reader.wait_for(lambda events: bool(events) and events[-1]["event"] == "exit", timeout + 10)
    finally:
        reader.stop()
    return reader


def probe(url: str, transport: str = "tcp", timeout: float = 20.0) -> subprocess.CompletedProcess:
    """ffprobe of the stream's video: on success stdout is JSON with codec_name, width and height; on failure
    stderr says why (e.g. "401 Unauthorized", "404 Not Found")."""
    return subprocess.run(["ffprobe", "-v", "error", "-rtsp_transport", transport, "-timeout",
                           str(int(min(timeout, 10) * 1e6)), "-select_streams", "v:0", "-show_entries",
                           "stream=codec_name,width,height", "-of", "json", url],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
