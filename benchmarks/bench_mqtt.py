"""How fast the MQTT bridge delivers, and what it costs: ``python -m emotiond.benchmarks.bench_mqtt``.

Starts Mosquitto on a free loopback port and ``emotiond run`` with ``[mqtt] enabled`` on N realtime, looping
640x480 30 fps videos of real face photos (1, 4, 1, ... faces), with ``update_interval`` at its minimum so every
face sends an event ten times a second. A paho subscriber stamps each event on receipt and a bus subscriber
records when the daemon published each result. Over ``new`` and ``update`` events (each caused by one frame's
result; an ``end`` may come from the expiry of a track whose end was lost) it reports:

* daemon → broker: from the result's publication on the bus (``published_at``) to the event's arrival at the
  subscriber: what the bridge and the broker add;
* capture → broker: from the frame's capture (the event's ``frame_time``) to the event's arrival: what an MQTT
  user sees;

and the bridge process's CPU use over the measured window (from /proc). With ``--feed paced`` (also part of the
default ``both``), ``emotiond mqtt`` is fed tracked results at exactly 30 fps per camera instead, so the bridge's
figures do not depend on how many frames the workers of a busy machine manage. Prints a Markdown table; ``--json``
writes the figures too.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from emotiond.benchmarks import harness
from emotiond.benchmarks.scoring import percentile
from emotiond.capture import synthetic
from emotiond.core import procfs, protocol
from emotiond.core.lifecycle import exit_on_sigterm

FACES = (1, 4, 1, 2, 3, 1)  # faces per camera, in order


def start_mosquitto(folder: Path) -> tuple[subprocess.Popen, int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).is_file():
        raise SystemExit("mosquitto is not installed (Debian package mosquitto; `make apt` installs it)")
    port = harness.free_port()
    config = folder / "mosquitto.conf"
    config.write_text(f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\nallow_anonymous true\n")
    process = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process, port
        time.sleep(0.05)
    process.kill()
    raise SystemExit("mosquitto did not start")


class EventClock:
    """A paho subscriber to PREFIX/events: (arrival time, event) for each."""

    def __init__(self, port: int):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.events: list[tuple[float, dict[str, Any]]] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda client, *_: client.subscribe("emotiond/events", qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = lambda _c, _u, message: self.events.append((time.time(), json.loads(message.payload)))
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not self.ready.wait(10):
            raise SystemExit("could not subscribe to the broker")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class ResultClock(threading.Thread):
    """The bus side: when the daemon published each result, by (camera, captured_at)."""

    def __init__(self, endpoint: str):
        super().__init__(daemon=True)
        self.endpoint = endpoint
        self.published: dict[tuple[str, float], float] = {}
        self.count = 0
        self._halt = threading.Event()

    def run(self) -> None:
        from emotiond.clients.subscribe import Subscription

        with Subscription(self.endpoint, kinds=("result",)) as subscription:
            while not self._halt.is_set():
                for message in subscription.receive(100):
                    if isinstance(message, protocol.Result):
                        self.published[(message.camera, message.captured_at)] = message.published_at
                        self.count += 1

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


class PacedFeed(threading.Thread):
    """Stands in for the daemon: publishes tracked results at exactly ``fps`` per camera on an XPUB, with the faces
    of FACES; every 150 frames the faces leave and new ones come (new and end events)."""

    def __init__(self, endpoint: str, cameras: int, fps: float = 30.0):
        super().__init__(daemon=True)
        import zmq

        self.cameras, self.fps = cameras, fps
        self.published: dict[tuple[str, float], float] = {}
        self.count = 0
        self._context = zmq.Context()
        self._sock = self._context.socket(zmq.XPUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(endpoint)
        self._halt = threading.Event()

    def wait_subscriber(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._sock.poll(100) and self._sock.recv().startswith(b"\x01" + protocol.RESULT_PREFIX):
                return
        raise SystemExit("the bridge did not subscribe to the paced feed")

    def _result(self, camera: int, seq: int) -> protocol.Result:
        labels = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
        generation, frame = divmod(seq, 150)
        faces, ended = [], []
        if frame == 0 and generation:
            ended = [(generation - 1) * 150 * 100 + i for i in range(FACES[camera % len(FACES)])]
        for i in range(FACES[camera % len(FACES)]):
            emotion = labels[(i + generation) % len(labels)]
            scores = {label: 0.9 if label == emotion else 0.1 / 6 for label in labels}
            faces.append(protocol.Face((40 + 150 * i, 100, 120, 120), emotion, 0.9, scores,
                                       track_id=generation * 150 * 100 + i, smoothed_emotion=emotion,
                                       smoothed_confidence=0.9))
        now = time.time()
        return protocol.Result(f"cam{camera}", seq, now - 0.015, now, (640, 480), tuple(faces), {"total": 15.0},
                               "paced", "paced", extra={"ended_tracks": ended})

    def run(self) -> None:
        seq, start = 0, time.monotonic()
        while not self._halt.is_set():
            for camera in range(self.cameras):
                result = self._result(camera, seq)
                self._sock.send_multipart(protocol.encode_result(result))
                self.published[(result.camera, result.captured_at)] = result.published_at
                self.count += 1
            seq += 1
            self._halt.wait(max(0.0, start + seq / self.fps - time.monotonic()))

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
        self._sock.close()
        self._context.term()


def start_daemon(cameras: int, work: Path, config: Path, env: dict[str, str]) -> tuple[harness.Daemon, Any, int]:
    """``emotiond run`` with the bridge as a role on realtime videos: (process, result clock, bridge pid)."""
    videos = [synthetic.write_video(work / f"cam{i}.mp4", synthetic.SceneSpec(faces=FACES[i % len(FACES)],
                                                                               frames=300))
              for i in range(cameras)]
    sources = [arg for i, video in enumerate(videos) for arg in ("--source", f"cam{i}={video}")]
    daemon = harness.start(["--config", str(config), *sources, "--realtime", "--loop"], env, work / "daemon.log")
    results = ResultClock(f"ipc://{work / 'run' / 'results'}.sock")
    results.start()
    return daemon, results, daemon.wait_child("mqtt", 60.0)


def start_paced(cameras: int, work: Path, config: Path, env: dict[str, str]) -> tuple[harness.Daemon, Any, int]:
    """``emotiond mqtt`` on a paced feed of results: (process, the feed, bridge pid)."""
    endpoint = f"ipc://{work / 'paced.sock'}"
    feed = PacedFeed(endpoint, cameras)
    bridge = harness.start(["--config", str(config), "--connect", endpoint], env, work / "bridge.log", command="mqtt")
    feed.wait_subscriber()
    feed.start()
    return bridge, feed, bridge.pid


def measure(feed: str, cameras: int, seconds: float, warmup: float, work: Path) -> dict[str, Any]:
    broker, port = start_mosquitto(work)
    config = work / "emotiond.toml"
    config.write_text(f'[mqtt]\nenabled = true\nurl = "mqtt://127.0.0.1:{port}"\nupdate_interval = 0.1\n')
    env = {**os.environ, "EMOTIOND_BUS__RUNTIME_DIR": str(work / "run"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    clock = EventClock(port)
    daemon, results, pid = (start_daemon if feed == "daemon" else start_paced)(cameras, work, config, env)
    try:
        deadline = time.monotonic() + 120
        while not clock.events and time.monotonic() < deadline:
            time.sleep(0.2)
        if not clock.events:
            raise SystemExit(f"no events reached the broker:\n{daemon.log()[-2000:]}")
        time.sleep(warmup)
        first, results0 = len(clock.events), results.count
        cpu0, wall0 = procfs.cpu_seconds(pid), time.monotonic()
        time.sleep(seconds)
        cpu1, wall1 = procfs.cpu_seconds(pid), time.monotonic()
        window, handled = clock.events[first:], results.count - results0
    finally:
        results.stop()
        daemon.stop(30)
        clock.close()
        broker.terminate()
        broker.wait(10)
    from_daemon, from_capture = [], []
    for arrived, event in window:
        if event["type"] == "end":  # may come from the 10 s expiry of a track whose end was lost: no one frame
            continue
        side = event["after"]
        from_capture.append((arrived - side["frame_time"]) * 1000)
        published = results.published.get((side["camera"], side["frame_time"]))
        if published is not None:
            from_daemon.append((arrived - published) * 1000)
    return {
        "feed": feed, "cameras": cameras, "faces": [FACES[i % len(FACES)] for i in range(cameras)],
        "results_per_second": round(handled / (wall1 - wall0), 1),
        "seconds": round(wall1 - wall0, 1),
        "events": len(window), "events_per_second": round(len(window) / (wall1 - wall0), 1),
        "measured_events": len(from_capture), "joined_to_results": len(from_daemon),
        "daemon_to_broker_ms": {q: round(percentile(from_daemon, q), 1) for q in (50, 95, 99)},
        "capture_to_broker_ms": {q: round(percentile(from_capture, q), 1) for q in (50, 95, 99)},
        "bridge_cpu_percent": round((cpu1 - cpu0) / (wall1 - wall0) * 100, 1),
        "cores": os.cpu_count(),
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| feed | cameras (faces) | results/s | events/s | daemon → broker p50 / p95 / p99 ms "
             "| capture → broker p50 / p95 / p99 ms | bridge CPU |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        d, c = row["daemon_to_broker_ms"], row["capture_to_broker_ms"]
        lines.append(f"| {row['feed']} | {row['cameras']} ({', '.join(map(str, row['faces']))}) "
                     f"| {row['results_per_second']} | {row['events_per_second']} "
                     f"| {d[50]} / {d[95]} / {d[99]} | {c[50]} / {c[95]} / {c[99]} | "
                     f"{row['bridge_cpu_percent']}% of a core |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 3], help="camera counts to run (default 1 3)")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window per run (default 60)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds after the first event before measuring")
    parser.add_argument("--feed", choices=["daemon", "paced", "both"], default="both",
                        help="daemon: emotiond run on realtime videos; paced: emotiond mqtt fed results at exactly "
                             "30 fps per camera (the bridge alone, whatever the workers manage); default both")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    rows = []
    feeds = ("daemon", "paced") if args.feed == "both" else (args.feed,)
    for feed in feeds:
        for cameras in args.cameras:
            with tempfile.TemporaryDirectory(prefix="emotiond-bench-mqtt-") as folder:
                rows.append(measure(feed, cameras, args.seconds, args.warmup, Path(folder)))
    sys.stdout.write(table(rows))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
