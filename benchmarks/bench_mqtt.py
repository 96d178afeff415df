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

and the bridge process's CPU use over the measured window (from /proc). Prints a Markdown table; ``--json``
writes the figures too.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from emotiond.benchmarks.scoring import percentile
from emotiond.daemon.capture import synthetic
from emotiond.daemon.core import procfs, protocol

FACES = (1, 4, 1, 2, 3, 1)  # faces per camera, in order


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_mosquitto(folder: Path) -> tuple[subprocess.Popen, int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).is_file():
        raise SystemExit("mosquitto is not installed (Debian package mosquitto; `make apt` installs it)")
    port = free_port()
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
        self._halt = threading.Event()

    def run(self) -> None:
        from emotiond.clients.subscribe import Subscription

        with Subscription(self.endpoint, kinds=("result",)) as subscription:
            while not self._halt.is_set():
                for message in subscription.receive(100):
                    if isinstance(message, protocol.Result):
                        self.published[(message.camera, message.captured_at)] = message.published_at

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def bridge_pid(log_path: Path, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.findall(r"started mqtt \(pid (\d+)\)", log_path.read_text(errors="replace"))
        if found:
            return int(found[-1])
        time.sleep(0.1)
    raise SystemExit(f"the daemon started no MQTT bridge:\n{log_path.read_text(errors='replace')[-2000:]}")


def measure(cameras: int, seconds: float, warmup: float, work: Path) -> dict[str, Any]:
    videos = [synthetic.write_video(work / f"cam{i}.mp4", synthetic.SceneSpec(faces=FACES[i % len(FACES)],
                                                                               frames=300))
              for i in range(cameras)]
    broker, port = start_mosquitto(work)
    runtime = work / "run"
    config = work / "emotiond.toml"
    config.write_text(f'[mqtt]\nenabled = true\nurl = "mqtt://127.0.0.1:{port}"\nupdate_interval = 0.1\n')
    sources = [arg for i, video in enumerate(videos) for arg in ("--source", f"cam{i}={video}")]
    log_path = work / "daemon.log"
    env = {**os.environ, "EMOTIOND_BUS__RUNTIME_DIR": str(runtime), "TF_CPP_MIN_LOG_LEVEL": "2"}
    clock = EventClock(port)
    with log_path.open("w") as log_file:
        daemon = subprocess.Popen([sys.executable, "-m", "emotiond", "run", "--config", str(config), *sources,
                                   "--realtime", "--loop", "--metrics-port", str(free_port())], env=env,
                                  stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    results = ResultClock(f"ipc://{runtime / 'results'}.sock")
    results.start()
    try:
        pid = bridge_pid(log_path)
        deadline = time.monotonic() + 120
        while not clock.events and time.monotonic() < deadline:
            time.sleep(0.2)
        if not clock.events:
            raise SystemExit(f"no events reached the broker:\n{log_path.read_text(errors='replace')[-2000:]}")
        time.sleep(warmup)
        first = len(clock.events)
        cpu0, wall0 = procfs.cpu_seconds(pid), time.monotonic()
        time.sleep(seconds)
        cpu1, wall1 = procfs.cpu_seconds(pid), time.monotonic()
        window = clock.events[first:]
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
        results.stop()
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
        "cameras": cameras, "faces": [FACES[i % len(FACES)] for i in range(cameras)],
        "seconds": round(wall1 - wall0, 1),
        "events": len(window), "events_per_second": round(len(window) / (wall1 - wall0), 1),
        "measured_events": len(from_capture), "joined_to_results": len(from_daemon),
        "daemon_to_broker_ms": {q: round(percentile(from_daemon, q), 1) for q in (50, 95, 99)},
        "capture_to_broker_ms": {q: round(percentile(from_capture, q), 1) for q in (50, 95, 99)},
        "bridge_cpu_percent": round((cpu1 - cpu0) / (wall1 - wall0) * 100, 1),
        "cores": os.cpu_count(),
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| cameras (faces) | events/s | daemon → broker p50 / p95 / p99 ms | capture → broker p50 / p95 / p99 ms "
             "| bridge CPU |", "|---|---|---|---|---|"]
    for row in rows:
        d, c = row["daemon_to_broker_ms"], row["capture_to_broker_ms"]
        lines.append(f"| {row['cameras']} ({', '.join(map(str, row['faces']))}) | {row['events_per_second']} "
                     f"| {d[50]} / {d[95]} / {d[99]} | {c[50]} / {c[95]} / {c[99]} | "
                     f"{row['bridge_cpu_percent']}% of a core |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 3], help="camera counts to run (default 1 3)")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window per run (default 60)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds after the first event before measuring")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    rows = []
    for cameras in args.cameras:
        with tempfile.TemporaryDirectory(prefix="emotiond-bench-mqtt-") as folder:
            rows.append(measure(cameras, args.seconds, args.warmup, Path(folder)))
    sys.stdout.write(table(rows))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
