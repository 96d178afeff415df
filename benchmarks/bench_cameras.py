"""High-resolution IP cameras, measured: ``emotiond run`` live against one and then two RTSP cameras serving
1920x1080 H.264 at 30 fps (``python -m emotiond.benchmarks.bench_cameras``; ``--fps`` sends fewer).

1. Builds a 1080p, 30 fps video of the shipped face photos moving and zooming, four faces of different sizes
   (``FACE_SIZES``: about 173, 108, 76 and 54 px wide), with the true boxes of every frame
   (capture/synthetic.py).
2. Serves it from one RTSP camera per camera of the run (benchmarks/rtsp_server.py: GStreamer's RTSP server
   under Debian's /usr/bin/python3, looping without end, over TCP). The video is encoded once at start-up (H.264
   main profile at 4 Mbit/s, a key frame every second, no B-frames: what 1080p IP cameras commonly send), so the
   simulated cameras cost this machine almost no CPU while the daemon is measured; their CPU is reported.
3. For each detector configuration (Haar with the defaults, Haar scanning whole frames at full size
   (``max_scan_width = 0``), the same with ``[detection] downscale``, BlazeFace) and
   each number of cameras, starts ``emotiond run`` on the cameras with the user's settings (``--config`` or
   $EMOTIOND_CONFIG, ``EMOTIOND_*`` variables) plus the configuration's, waits for every camera's first result
   and a warm-up, then measures for ``--seconds``: the subscriber stamps every result on receipt, /metrics is
   read at both ends of the window, and the CPU of every process is sampled from /proc.
4. Prints two Markdown tables and writes them with a JSON copy to ``--out`` (cameras.md, cameras.json).

Per configuration: results per second per camera, drop rate (the change of emotiond_frames_dropped_total over
that of emotiond_frames_captured_total), subscriber-side latency (receive time - captured_at) p50 and p95, recall
against the true boxes (overall and per face size), decode cost (CPU of the capture process per captured frame:
FFmpeg's decoding threads, the conversion to BGR and the hand-over to the workers; the wall time of a read on a
live stream is mostly the wait for the camera's next frame, so it says nothing about decoding), the worker's
detect and classify times, the share of frames detected whole, and the CPU used by the daemon's processes, by
the camera servers and by everything else on the machine, with the load average before and after: a figure
taken while other work ran says so.

Recall: a camera loops its video, so a result's ``seq`` (the capture's frame counter) maps to frame
``(seq + offset) % frames`` of the video, with an offset fixed by when the daemon joined the stream. The offset
is found per stretch of ``ALIGN_RESULTS`` consecutive results as the one under which the reported boxes overlap
the true ones best (a stretch of its own, so a reconnect or a jump of the stream cannot spoil the rest).

``--quick`` (a 3-second video, 8-second windows after a 3-second warm-up) runs every configuration in about two
minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emotiond.benchmarks import harness, scoring
from emotiond.benchmarks.emotiond_run import DaemonSettings, RunError, sampled_daemon
from emotiond.capture import synthetic
from emotiond.clients.subscribe import Subscription
from emotiond.core import procfs, protocol
from emotiond.core.errors import UsageError
from emotiond.core.lifecycle import exit_on_sigterm
from emotiond.core.settings import load_settings

WIDTH, HEIGHT, FPS = 1920, 1080, 30.0
FACE_SIZES = (0.16, 0.10, 0.07, 0.05)  # of the frame height, before the scene's +-20% zoom
FULL_FRAMES, QUICK_FRAMES = 300, 90
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-gi for GStreamer's RTSP server
DEBIAN_PACKAGES = ("python3-gi", "gir1.2-gst-rtsp-server-1.0", "gstreamer1.0-plugins-base",
                   "gstreamer1.0-plugins-good", "gstreamer1.0-plugins-ugly", "gstreamer1.0-libav")
SERVER_READY_SECONDS = 180.0  # the server decodes and encodes the whole video before it listens
BITRATE_KBPS = 4096  # H.264 main profile, as 1080p IP cameras commonly send
FIRST_RESULT_SECONDS = 120.0
ALIGN_RESULTS = 90
TARGET_DROP_RATE = 0.02
DEFAULT_DOWNSCALE = 0.5
DETECTORS = ("haar", "haar-full", "haar-downscale", "blazeface")
DEFAULT_OUT = Path("benchmarks") / "results"
METRICS_LINE = re.compile(r"metrics on http://([^:/\s]+):(\d+)/metrics")


# ---------------------------------------------------------------- configurations

@dataclass(frozen=True)
class Configuration:
    """A detector set-up: a label and the settings it changes, as ``EMOTIOND_*`` variables (above a config file,
    below flags)."""

    label: str
    env: dict[str, str] = field(default_factory=dict)


def configurations(downscale: float, names: Sequence[str]) -> list[Configuration]:
    haar = {"EMOTIOND_DETECTION__BACKEND": "haar"}
    full_size = {**haar, "EMOTIOND_DETECTION__MAX_SCAN_WIDTH": "0"}
    known = {
        "haar": Configuration("haar (defaults)", haar),
        "haar-full": Configuration("haar, full-size scans", full_size),
        "haar-downscale": Configuration(f"haar, downscale {downscale:g}", {
            **full_size, "EMOTIOND_DETECTION__DOWNSCALE": f"{downscale:g}"}),
        "blazeface": Configuration("blazeface", {"EMOTIOND_DETECTION__BACKEND": "blazeface"}),
    }
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UsageError(f"unknown detector configuration {', '.join(unknown)}: choose from {', '.join(known)}")
    return [known[name] for name in names]


# ---------------------------------------------------------------- the cameras

def server_missing() -> str | None:
    """Why the RTSP server cannot run here, or None when it can."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} is missing"
    check = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
             "assert Gst.ElementFactory.find('x264enc'), 'x264enc is missing'")
    done = subprocess.run([SYSTEM_PYTHON, "-c", check], capture_output=True, text=True, timeout=60,
                          env=_server_env())
    return None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["failed"])[-1]


def _server_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):  # Debian's python3 with its own dist-packages
        env.pop(name, None)
    return env


class Camera:
    """One RTSP server process serving ``video`` over TCP at rtsp://127.0.0.1:PORT/cam."""

    def __init__(self, video: Path, log_path: Path, fps: float = FPS):
        self.video, self.log_path, self.fps = video, log_path, fps
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> Camera:
        with self.log_path.open("a") as log_file:
            self.process = subprocess.Popen(
                [SYSTEM_PYTHON, str(SERVER_SCRIPT), str(self.video), "--port", "0", "--address", "127.0.0.1",
                 "--protocols", "tcp", "--fps", f"{self.fps:g}", "--encode-once", "--bitrate", str(BITRATE_KBPS)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=log_file, text=True, env=_server_env(), start_new_session=True)
        deadline = time.monotonic() + SERVER_READY_SECONDS
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if not ready:
                if self.process.poll() is not None:
                    break
                continue
            line = self.process.stdout.readline()
            if line.startswith("ready "):
                self.url = f"rtsp://127.0.0.1:{int(line.split()[1])}/cam"
                return self
            if not line:
                break
        self.stop()
        raise RunError(f"the RTSP camera serving {self.video.name} did not start; its log ends:\n"
                       f"{_tail(self.log_path)}")

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else 0

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        _end_session(process, 10.0)
        if process.stdout is not None:
            process.stdout.close()


def _end_session(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM to a process that leads its own session, then SIGKILL to the whole session after ``grace`` s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
            return
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ---------------------------------------------------------------- one measured run

@dataclass
class Window:
    """What one run gave inside its measured window."""

    seconds: float
    results: list[protocol.Result]
    received_at: list[float]
    metrics_before: dict[str, float]
    metrics_after: dict[str, float]
    cpu_by_role: dict[str, float]
    server_cpu: float
    machine_cpu: float  # CPU seconds every process of the machine used in the window
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    startup_seconds: float


def _metric_totals(text: str) -> dict[str, float]:
    """camera-keyed totals of the counters the report needs: ``captured/cam0``, ``dropped/cam0``, ``processed/...``
    and ``dropped_<reason>/cam0``; and ``detections/full``, ``detections/tracked`` (every camera)."""
    from prometheus_client.parser import text_string_to_metric_families

    names = {"emotiond_frames_captured_total": "captured", "emotiond_frames_dropped_total": "dropped",
             "emotiond_frames_processed_total": "processed"}
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "emotiond_detections_total":  # frames detected by a whole-frame pass or tracked
                key = f"detections/{sample.labels.get('kind', '')}"
                totals[key] = totals.get(key, 0.0) + sample.value
            short = names.get(sample.name)
            camera = sample.labels.get("camera")
            if short is None or camera is None:
                continue
            totals[f"{short}/{camera}"] = totals.get(f"{short}/{camera}", 0.0) + sample.value
            if "reason" in sample.labels:
                key = f"dropped_{sample.labels['reason']}/{camera}"
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def _scrape(address: tuple[str, int]) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{address[0]}:{address[1]}/metrics", timeout=10) as response:
        return _metric_totals(response.read().decode())


def _role_group(title: str) -> str:
    return "worker" if title.startswith("worker") else title


def measure(configuration: Configuration, cameras: dict[str, Camera], daemon: DaemonSettings, work: Path,
            warmup: float, seconds: float) -> Window:
    """Start the daemon on ``cameras``; after every camera's first result and ``warmup`` s, measure for
    ``seconds``; stop it."""
    runtime = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    args = daemon.run_args(runtime, {name: camera.url for name, camera in cameras.items()})
    settings = load_settings(daemon.config_file(), {"bus": {"runtime_dir": runtime}})
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **configuration.env}
    log_path = runtime / "daemon.log"
    results: list[protocol.Result] = []
    received_at: list[float] = []
    seen: set[str] = set()
    with Subscription(settings=settings, kinds=("result",)) as subscription:
        started = time.monotonic()
        with sampled_daemon(args, env, log_path) as (running, sampler):
            process = running.process

            def receive(until: float, keep: bool) -> None:
                while time.monotonic() < until:
                    if process.poll() is not None:
                        if process.returncode == 2:
                            raise UsageError(f"the daemon refused its settings: {_tail(log_path, 1)}")
                        raise RunError(f"the daemon exited with status {process.returncode}; its log ends:\n"
                                       f"{_tail(log_path)}")
                    for message in subscription.receive(100):
                        if isinstance(message, protocol.Result):
                            seen.add(message.camera)
                            if keep:
                                results.append(message)
                                received_at.append(time.time())

            deadline = started + FIRST_RESULT_SECONDS
            while seen != set(cameras):
                if time.monotonic() > deadline:
                    raise RunError(f"no result from {sorted(set(cameras) - seen)} within {FIRST_RESULT_SECONDS:.0f}"
                                   f" s; the daemon's log ends:\n{_tail(log_path)}")
                receive(time.monotonic() + 0.2, keep=False)
            startup = time.monotonic() - started
            receive(time.monotonic() + warmup, keep=False)
            address = _metrics_address(log_path)
            titles = procfs.roles(procfs.session_pids(process.pid))  # "capture", "worker w1"...
            servers = [camera.pid for camera in cameras.values()]
            load_before = os.getloadavg()
            server_before = sum(procfs.cpu_seconds(pid) for pid in servers)
            machine_before = _machine_cpu_seconds()
            before = _scrape(address)
            window_start = time.monotonic()
            receive(window_start + seconds, keep=True)
            window_end = time.monotonic()
            after = _scrape(address)
            machine_after = _machine_cpu_seconds()
            server_after = sum(procfs.cpu_seconds(pid) for pid in servers)
            load_after = os.getloadavg()
    cpu: dict[str, float] = {}
    for pid, used in sampler.cpu_between(window_start, window_end).items():
        role = _role_group(titles.get(pid, "other"))
        cpu[role] = cpu.get(role, 0.0) + used
    return Window(window_end - window_start, results, received_at, before, after, cpu, server_after - server_before,
                  machine_after - machine_before, load_before, load_after, startup)


def _machine_cpu_seconds() -> float:
    """CPU seconds all processes of the machine have used since boot (/proc/stat: everything but idle time)."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:8]]
    except (OSError, ValueError, IndexError):
        return 0.0
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / procfs.CLOCK_TICKS


def _metrics_address(log_path: Path, timeout: float = 10.0) -> tuple[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = METRICS_LINE.search(log_path.read_text(errors="replace"))
        if found:
            return found.group(1), int(found.group(2))
        time.sleep(0.1)
    raise RunError(f"the daemon's log names no /metrics address; it ends:\n{_tail(log_path)}")


# ---------------------------------------------------------------- recall

def _iou(truth: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of every true box (... x F x 4) with every reported box (K x 4): ... x F x K. Boxes are x, y, w, h."""
    t = truth[..., None, :].astype(np.float64)
    b = boxes.astype(np.float64)
    x0 = np.maximum(t[..., 0], b[:, 0])
    y0 = np.maximum(t[..., 1], b[:, 1])
    x1 = np.minimum(t[..., 0] + t[..., 2], b[:, 0] + b[:, 2])
    y1 = np.minimum(t[..., 1] + t[..., 3], b[:, 1] + b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = t[..., 2] * t[..., 3] + b[:, 2] * b[:, 3] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def aligned_recall(results: Sequence[protocol.Result], truth: np.ndarray) -> dict[str, Any]:
    """Recall of one camera's results against its looping video's true boxes (``truth``: frames x faces x 4),
    overall and per face (in the scene's order), each stretch of results aligned on its own (module doc)."""
    frames, faces = truth.shape[:2]
    ordered = sorted(results, key=lambda r: r.seq)
    found = np.zeros(faces)
    total = 0
    offsets = np.arange(frames)
    for begin in range(0, len(ordered), ALIGN_RESULTS):
        stretch = ordered[begin: begin + ALIGN_RESULTS]
        best = np.zeros((len(stretch), frames, faces))  # best IoU of each true face under each offset
        for row, result in enumerate(stretch):
            if result.faces:
                boxes = np.array([face.box for face in result.faces], np.float64)
                best[row] = _iou(truth[(result.seq + offsets) % frames], boxes).max(axis=-1)
        offset = int(np.argmax(best.sum(axis=(0, 2))))
        found += (best[:, offset, :] >= scoring.MATCH_IOU).sum(axis=0)
        total += len(stretch)
    per_face = (found / total).tolist() if total else [0.0] * faces
    return {"recall": float(found.sum() / (total * faces)) if total else 0.0, "per_face": per_face,
            "results": total}


# ---------------------------------------------------------------- figures

def figures(configuration: Configuration, window: Window, truth: np.ndarray, cameras: Sequence[str],
            fps: float = FPS) -> dict:
    before, after = window.metrics_before, window.metrics_after
    seconds = window.seconds

    def change(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    per_camera = {}
    for camera in cameras:
        mine = [r for r in window.results if r.camera == camera]
        captured, dropped = change(f"captured/{camera}"), change(f"dropped/{camera}")
        reasons = {key.split("/")[0][len("dropped_"):]: change(key) for key in after
                   if key.startswith("dropped_") and key.endswith(f"/{camera}") and change(key)}
        per_camera[camera] = {
            "results_per_second": len(mine) / seconds, "captured_per_second": captured / seconds,
            "processed_per_second": change(f"processed/{camera}") / seconds,
            "captured": captured, "dropped": dropped, "drop_rate": dropped / captured if captured else 1.0,
            "dropped_by_reason": reasons, **aligned_recall(mine, truth)}
    captured_all = sum(c["captured"] for c in per_camera.values())
    latency = scoring.subscriber_latency_ms(window.results, window.received_at)
    stages = scoring.stage_means(window.results)
    cpu = window.cpu_by_role
    recalled = sum(c["recall"] * c["results"] for c in per_camera.values())
    counted = sum(c["results"] for c in per_camera.values())
    per_face = np.average([c["per_face"] for c in per_camera.values()], axis=0,
                          weights=[max(1, c["results"]) for c in per_camera.values()]).tolist()
    detected = change("detections/full") + change("detections/tracked")
    return {
        "configuration": configuration.label, "settings": configuration.env, "cameras": len(cameras),
        "seconds": seconds, "startup_seconds": window.startup_seconds,
        "load_average_before": list(window.load_before), "load_average_after": list(window.load_after),
        "decode_cpu_ms_per_frame": cpu.get("capture", 0.0) / captured_all * 1000 if captured_all else 0.0,
        "results_per_second": {c: v["results_per_second"] for c, v in per_camera.items()},
        "drop_rate": {c: v["drop_rate"] for c, v in per_camera.items()},
        "subscriber_latency_ms": {"p50": scoring.percentile(latency, 50), "p95": scoring.percentile(latency, 95)},
        "recall": recalled / counted if counted else 0.0,
        "recall_by_face_px": {str(round(size * HEIGHT)): value for size, value in zip(FACE_SIZES, per_face,
                                                                                     strict=True)},
        "worker_ms_per_frame": stages,
        # Frames whose faces came from a whole-frame pass in the frame's own time (Haar: the first frame, one after
        # a gap longer than [tracking] full_scan_interval, or one where a tracked face vanished; BlazeFace: all).
        "whole_frame_share": change("detections/full") / detected if detected else 0.0,
        "cpu_cores": {"daemon": sum(cpu.values()) / seconds, "camera_servers": window.server_cpu / seconds,
                      "other_processes": max(0.0, window.machine_cpu - sum(cpu.values()) - window.server_cpu) / seconds,
                      **{role: used / seconds for role, used in sorted(cpu.items())}},
        "keeps_up": all(v["drop_rate"] <= TARGET_DROP_RATE and v["results_per_second"] >= 0.98 * fps * (
            1 - TARGET_DROP_RATE) for v in per_camera.values()),
        "per_camera": per_camera,
    }


# ---------------------------------------------------------------- report

def render(report: dict[str, Any]) -> str:
    machine = report["machine"]
    sizes = " / ".join(str(px) for px in report["face_px"])
    lines = [
        f"Machine: {machine['cores']} cores, load average {_load(machine['load_average_before'])} before the "
        f"benchmark. Cameras: {WIDTH}x{HEIGHT} H.264 at {report['fps']:g} fps over RTSP (TCP), a "
        f"{report['video_frames']}-frame looping video of 4 faces {', '.join(map(str, report['face_px']))} px wide "
        "(+-20%); "
        f"{report['seconds']:g} s measured per run after {report['warmup']:g} s of warm-up.",
        "",
        f"| cameras | detector | results/s per camera | dropped | subscriber latency p50 / p95 ms | recall "
        f"| recall by face width ({sizes} px) | decode CPU ms/frame | load average 1 min (before / after) "
        f"| {report['fps']:g} fps, <= {TARGET_DROP_RATE:.0%} dropped |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["runs"]:
        lines.append(
            f"| {row['cameras']} | {row['configuration']} | {_per_camera(row['results_per_second'], '{:.1f}')} | "
            f"{_per_camera(row['drop_rate'], '{:.1%}')} | "
            f"{row['subscriber_latency_ms']['p50']:.0f} / {row['subscriber_latency_ms']['p95']:.0f} | "
            f"{row['recall']:.3f} | {' / '.join(f'{v:.2f}' for v in row['recall_by_face_px'].values())} | "
            f"{row['decode_cpu_ms_per_frame']:.1f} | {row['load_average_before'][0]:.1f} / "
            f"{row['load_average_after'][0]:.1f} | {'yes' if row['keeps_up'] else '**no**'} |")
    lines += [
        "",
        "Where the CPU went (cores: CPU seconds per second of the window):",
        "",
        "| cameras | detector | worker detect / classify ms per frame | frames detected whole | capture | workers "
        "| whole daemon | camera servers | other processes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["runs"]:
        cores = row["cpu_cores"]
        lines.append(
            f"| {row['cameras']} | {row['configuration']} | {row['worker_ms_per_frame']['detect']:.1f} / "
            f"{row['worker_ms_per_frame']['classify']:.1f} | {row['whole_frame_share']:.1%} | "
            f"{cores.get('capture', 0.0):.2f} | "
            f"{cores.get('worker', 0.0):.2f} | {cores['daemon']:.2f} | {cores['camera_servers']:.2f} | "
            f"{cores['other_processes']:.2f} |")
    lines += [
        "",
        "* **results/s**, **dropped**: per camera (cam0, cam1). Dropped = change of emotiond_frames_dropped_total / "
        "change of emotiond_frames_captured_total over the window (a live camera skips the frames no worker was "
        "free for).",
        "* **subscriber latency**: receive time in a `Subscription` - `captured_at` (the frame read from the "
        "stream), every camera together.",
        "* **recall**: true faces found (IoU >= 0.4) in the results received; a result's frame of the looping video "
        "is found by alignment (benchmarks/bench_cameras.py says how).",
        "* **decode CPU ms/frame**: CPU of the capture process (FFmpeg's decoder threads, conversion to BGR, "
        "hand-over to the workers) per frame captured, all cameras together.",
        "* **worker detect / classify**: the worker's own stage times per frame (`latency_ms`), waits for the CPU "
        "included. **frames detected whole**: share of frames whose faces a whole-frame pass found in the frame's "
        "own time (emotiond_detections_total{kind=\"full\"}): for Haar the first frame, a frame after a gap "
        "longer than `[tracking] full_scan_interval` and one where a tracked face vanished; for BlazeFace every "
        "frame. **camera servers**: the simulated cameras (their video is encoded once, before the runs). "
        "**other processes**: everything else the machine ran during the window.",
    ]
    return "\n".join(lines) + "\n"


def _per_camera(values: dict[str, float], form: str) -> str:
    return ", ".join(form.format(value) for value in values.values())


def _load(values: Sequence[float]) -> str:
    return " / ".join(f"{value:.2f}" for value in values)


# ---------------------------------------------------------------- main

def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    why = server_missing()
    if why is not None:
        raise UsageError(f"the RTSP camera cannot run: {why}. Install the Debian packages "
                         f"{' '.join(DEBIAN_PACKAGES)} (`make deps` installs them)")
    frames = QUICK_FRAMES if args.quick else FULL_FRAMES
    spec = synthetic.SceneSpec(faces=len(FACE_SIZES), width=WIDTH, height=HEIGHT, frames=frames, fps=FPS,
                               face_sizes=FACE_SIZES)
    video = synthetic.write_video(work / "cameras-1080p.mp4", spec)
    truth = np.array(synthetic.load_truth(video), np.float64)
    report: dict[str, Any] = {
        "machine": {"cores": os.cpu_count(), "load_average_before": list(os.getloadavg())},
        "video_frames": frames, "fps": args.fps, "seconds": args.seconds, "warmup": args.warmup,
        "face_px": [round(size * HEIGHT) for size in FACE_SIZES], "runs": []}
    counts = sorted(set(args.cameras))
    servers = [Camera(video, work / f"camera{index}.log", args.fps) for index in range(max(counts))]
    try:
        for server in servers:
            server.start()
        for count in counts:
            cameras = {f"cam{index}": servers[index] for index in range(count)}
            for configuration in configurations(args.downscale, args.detectors):
                print(f"measuring {count} camera(s), {configuration.label} (load average "
                      f"{_load(os.getloadavg())})", file=sys.stderr, flush=True)
                window = measure(configuration, cameras, DaemonSettings(args.config), work, args.warmup,
                                 args.seconds)
                row = figures(configuration, window, truth, list(cameras), args.fps)
                report["runs"].append(row)
                print(f"  {_per_camera(row['results_per_second'], '{:.1f}')} results/s, dropped "
                      f"{_per_camera(row['drop_rate'], '{:.1%}')}, recall {row['recall']:.3f}, load average "
                      f"{row['load_average_after'][0]:.2f}", file=sys.stderr, flush=True)
    finally:
        for server in servers:
            server.stop()
    report["machine"]["load_average_after"] = list(os.getloadavg())
    return report


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of camera counts: {text!r}") from None
    if not counts or not all(1 <= count <= 8 for count in counts):
        raise argparse.ArgumentTypeError("camera counts go from 1 to 8")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="1080p IP cameras, measured: emotiond run live against RTSP "
                                                 "cameras sending 1920x1080 H.264, per detector set-up.")
    parser.add_argument("--seconds", type=float, default=None, help="measured window per run (default 30, "
                        "8 with --quick)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds after every camera's first result "
                        "before measuring (default 10, 3 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a 3-second looping video and short windows")
    parser.add_argument("--fps", type=float, default=FPS, help=f"frame rate the cameras send (default {FPS:g}; "
                        "the video plays slower or faster, frame by frame)")
    parser.add_argument("--cameras", type=_counts, default=[1, 2], help="camera counts to run (default 1,2)")
    parser.add_argument("--detectors", default=",".join(DETECTORS),
                        help=f"configurations to run, from {', '.join(DETECTORS)} (default all)")
    parser.add_argument("--downscale", type=float, default=DEFAULT_DOWNSCALE,
                        help=f"[detection] downscale of the haar-downscale configuration (default {DEFAULT_DOWNSCALE})")
    parser.add_argument("--config", type=Path, default=None, help="emotiond config file (default $EMOTIOND_CONFIG)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for cameras.md and cameras.json")
    args = parser.parse_args(argv)
    args.seconds = args.seconds if args.seconds is not None else (8.0 if args.quick else 30.0)
    args.warmup = args.warmup if args.warmup is not None else (3.0 if args.quick else 10.0)
    args.detectors = [name.strip() for name in args.detectors.split(",") if name.strip()]
    if args.seconds <= 0 or args.warmup < 0 or not 0.0 < args.downscale <= 1.0 or not 1.0 <= args.fps <= 60.0:
        parser.error("--seconds must be above 0, --warmup at least 0, --downscale in (0, 1], --fps from 1 to 60")
    exit_on_sigterm()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    work = Path(tempfile.mkdtemp(prefix="emotiond-bench-cameras-"))
    try:
        configurations(args.downscale, args.detectors)  # a wrong name fails before anything starts
        report = run(args, work)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    markdown = render(report)
    print(markdown)
    harness.write_results(args.out, "cameras", markdown, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
