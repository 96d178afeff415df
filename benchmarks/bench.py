"""emotiond against the ``fer`` package, measured in one run on one machine (``emotiond bench``).

1. Builds 640x480, 30 fps test videos of real face photos (1 face and 4 faces), with the true boxes.
2. Runs fer 25.10.3 frame by frame with its defaults, in its own venv (never a project dependency).
3. Runs the emotiond daemon end to end in file mode (daemon + subscriber, nothing lost), then paced at
   30 fps (live) with one camera and with three cameras.
4. Prints a Markdown table (throughput and ratio to fer, recall, agreement with fer, latency, CPU per frame,
   peak RSS per process, drop rates, CPU breakdown) and writes it with a JSON copy to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
from importlib.resources import files
from pathlib import Path
from typing import Any

from emotiond.clients.subscribe import subscribe
from emotiond.daemon.capture import synthetic
from emotiond.daemon.core import procfs, protocol
from emotiond.daemon.core.settings import Settings
from emotiond.workers.tracking import iou

FER_VERSION = "25.10.3"
FER_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emotiond" / "bench" / "fer-venv"
MATCH_IOU = 0.4


# ---------------------------------------------------------------- inputs

def build_videos(root: Path, frames: int) -> dict[str, Path]:
    return {
        "1 face": synthetic.write_video(root / "one_face.mp4", synthetic.SceneSpec(faces=1, frames=frames)),
        "4 faces": synthetic.write_video(root / "four_faces.mp4", synthetic.SceneSpec(faces=4, frames=frames)),
    }


def fer_python() -> Path:
    """A venv with ``pip install --no-deps fer``; the modules fer imports come from our venv via a .pth file."""
    python = FER_VENV / "bin" / "python"
    if not (FER_VENV / "lib").exists() or subprocess.run([python, "-c", "import fer.fer"],
                                                         capture_output=True).returncode != 0:
        subprocess.run([sys.executable, "-m", "venv", "--clear", FER_VENV], check=True)
        site = next((FER_VENV / "lib").glob("python*/site-packages"))
        ours = [p for p in sys.path if p.endswith("site-packages")]
        (site / "emotiond_deps.pth").write_text("\n".join(ours) + "\n")
        subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", f"fer=={FER_VERSION}"], check=True)
    return python


def run_fer(python: Path, video: Path) -> dict[str, Any]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([python, str(files(__package__) / "fer_baseline.py"), str(video)], capture_output=True,
                          text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"fer baseline failed: {done.stderr[-2000:]}")
    data = json.loads(done.stdout)
    data["fps"] = data["frames"] / data["wall_seconds"]
    data["cpu_per_frame_ms"] = data["cpu_seconds"] / data["frames"] * 1000
    return data


# ---------------------------------------------------------------- process sampling

class ProcessSampler(threading.Thread):
    """CPU seconds and peak RSS of every process of the daemon's session, sampled until stopped."""

    def __init__(self, session: int):
        super().__init__(daemon=True)
        self.session = session
        self.cpu: dict[int, float] = {}
        self.peak_rss: dict[int, int] = {}
        self._halt = threading.Event()
        self._marks: dict[str, dict[int, float]] = {}

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(0.05)

    def sample(self) -> None:
        for pid in procfs.session_pids(self.session):
            self.cpu[pid] = procfs.cpu_seconds(pid)
            self.peak_rss[pid] = max(self.peak_rss.get(pid, 0), procfs.peak_rss_kb(pid) * 1024)

    def mark(self, name: str) -> None:
        self.sample()
        self._marks[name] = dict(self.cpu)

    def cpu_between(self, start: str, end: str) -> dict[int, float]:
        """CPU seconds per process between two marks (start-up excluded)."""
        before = self._marks[start]
        return {pid: cpu - before.get(pid, 0.0) for pid, cpu in self._marks[end].items()}

    def stop(self) -> None:
        self._halt.set()
        self.join(2)


# ---------------------------------------------------------------- emotiond runs

def run_emotiond(sources: dict[str, Path], realtime: bool, extra: list[str], work: Path) -> dict[str, Any]:
    """Start the daemon, subscribe, collect every result until all cameras end; sample CPU and memory."""
    runtime = Path(tempfile.mkdtemp(prefix="bench-", dir=work))
    env = {**os.environ, "EMOTIOND_BUS__RUNTIME_DIR": str(runtime), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "emotiond", "run", "--metrics-port", "0", *extra]
    for name, path in sources.items():
        command += ["--source", f"{name}={path}"]
    if realtime:
        command.append("--realtime")
    log_path = runtime / "daemon.log"
    settings = Settings(bus={"runtime_dir": runtime})
    results: list[protocol.Result] = []
    ended: set[str] = set()
    with log_path.open("w") as log_file:
        daemon = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    sampler = ProcessSampler(daemon.pid)
    sampler.start()
    try:
        for message in subscribe(settings=settings, include_status=True, timeout=600):
            if isinstance(message, protocol.Status):
                if message.state == "eos":
                    ended.add(message.camera)
                    if ended == set(sources):
                        break
                continue
            if not results:
                sampler.mark("first")
            results.append(message)
            sampler.mark("last")
        daemon.wait(60)
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(30)
        sampler.stop()
    roles = _roles(log_path.read_text(errors="replace"), daemon.pid)
    steady = sampler.cpu_between("first", "last")
    return {"results": results, "cpu_seconds": sum(steady.values()), "cpu_by_role": _by_role(steady, roles),
            "peak_rss": _by_role(sampler.peak_rss, roles, peak=True)}


def _roles(log: str, supervisor: int) -> dict[int, str]:
    roles = {supervisor: "supervisor"}
    for name, pid in re.findall(r"started (\S+) \(pid (\d+)\)", log):
        roles[int(pid)] = "worker" if name.startswith("w") else name
    return roles


def _by_role(values: dict[int, float], roles: dict[int, str], peak: bool = False) -> dict[str, float]:
    out: dict[str, float] = {}
    for pid, value in values.items():
        role = roles.get(pid, "other")
        out[role] = max(out.get(role, 0), value) if peak else out.get(role, 0) + value
    return out


# ---------------------------------------------------------------- scoring

def throughput(results: list[protocol.Result]) -> float:
    stamps = sorted(r.published_at for r in results)
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0


def recall(results: list[protocol.Result], truth: list[list[tuple]]) -> float:
    found = total = 0
    for result in results:
        for true_box in truth[result.seq]:
            total += 1
            found += any(iou(true_box, face.box) >= MATCH_IOU for face in result.faces)
    return found / total if total else 0.0


def agreement(results: list[protocol.Result], fer_faces: list[list[dict]]) -> float:
    same = compared = 0
    for result in results:
        for theirs in fer_faces[result.seq]:
            ours = max(result.faces, key=lambda f: iou(f.box, tuple(theirs["box"])), default=None)
            if ours is not None and iou(ours.box, tuple(theirs["box"])) >= MATCH_IOU:
                compared += 1
                same += ours.emotion == theirs["emotion"]
    return same / compared if compared else 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else 0.0


def live_drop_rate(results: list[protocol.Result]) -> dict[str, float]:
    """Frames missing between each camera's first and last result (start-up excluded)."""
    rates = {}
    for camera in sorted({r.camera for r in results}):
        seqs = [r.seq for r in results if r.camera == camera]
        span = max(seqs) - min(seqs) + 1
        rates[camera] = 1 - len(set(seqs)) / span
    return rates


def stage_means(results: list[protocol.Result]) -> dict[str, float]:
    stages = ("decode", "detect", "crop", "classify", "publish")
    return {s: statistics.fmean(r.latency_ms.get(s, 0.0) for r in results) for s in stages}


# ---------------------------------------------------------------- report

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("benchmarks") / "results")
    parser.add_argument("--workers", type=int, default=0, help="daemon workers (0: automatic)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="emotiond-bench-"))
    videos = build_videos(work, args.frames)
    extra = ["--workers", str(args.workers)] if args.workers else []
    python = fer_python()
    report: dict[str, Any] = {"machine": {"cores": os.cpu_count()}, "file_mode": {}, "live": {}}
    rows = []
    for label, video in videos.items():
        truth = synthetic.load_truth(video)
        fer = run_fer(python, video)
        ours = run_emotiond({"cam0": video}, realtime=False, extra=extra, work=work)
        results = ours["results"]
        fps = throughput(results)
        latencies = [r.latency_ms["total"] for r in results]
        cpu_per_frame = ours["cpu_seconds"] / max(1, len(results) - 1) * 1000
        stages = stage_means(results)
        proxy_ms = ours["cpu_by_role"].get("proxy", 0) / max(1, len(results) - 1) * 1000
        bus_ms = stages["decode"] + stages["publish"] + proxy_ms
        entry = {
            "frames": len(truth), "results": len(results), "lost": len(truth) - len({r.seq for r in results}),
            "fer": {"fps": fer["fps"], "cpu_per_frame_ms": fer["cpu_per_frame_ms"],
                    "peak_rss_mb": fer["peak_rss_bytes"] / 2**20,
                    "recall": recall_from_fer(fer["faces"], truth)},
            "emotiond": {"fps": fps, "ratio": fps / fer["fps"], "recall": recall(results, truth),
                         "agreement_with_fer": agreement(results, fer["faces"]),
                         "latency_p50_ms": percentile(latencies, 50), "latency_p95_ms": percentile(latencies, 95),
                         "cpu_per_frame_ms": cpu_per_frame,
                         "peak_rss_mb": {k: v / 2**20 for k, v in ours["peak_rss"].items()},
                         "stage_ms": stages, "proxy_ms": proxy_ms,
                         "cpu_ms_by_role": {k: v / max(1, len(results) - 1) * 1000
                                            for k, v in ours["cpu_by_role"].items()},
                         "bus_overhead_share": bus_ms / cpu_per_frame if cpu_per_frame else 0},
        }
        report["file_mode"][label] = entry
        rows.append((label, entry))
        print(f"{label}: fer {fer['fps']:.1f} fps, emotiond {fps:.1f} fps ({fps / fer['fps']:.2f}x)", flush=True)
    live_one = run_emotiond({"cam0": videos["1 face"]}, realtime=True, extra=extra, work=work)
    live_three = run_emotiond({"cam0": videos["1 face"], "cam1": videos["4 faces"], "cam2": videos["1 face"]},
                              realtime=True, extra=extra, work=work)
    one_latency = [r.latency_ms["total"] for r in live_one["results"]]
    three_latency = [r.latency_ms["total"] for r in live_three["results"]]
    report["live"] = {
        "one_camera": {"drop_rate": live_drop_rate(live_one["results"])["cam0"],
                       "latency_p50_ms": percentile(one_latency, 50), "latency_p95_ms": percentile(one_latency, 95)},
        "three_cameras": {"drop_rate": live_drop_rate(live_three["results"]),
                          "latency_p50_ms": percentile(three_latency, 50),
                          "latency_p95_ms": percentile(three_latency, 95)},
    }
    markdown = render(rows, report)
    print(markdown)
    (args.out / "latest.md").write_text(markdown)
    (args.out / "latest.json").write_text(json.dumps(report, indent=2))
    return 0


def recall_from_fer(fer_faces: list[list[dict]], truth: list[list[tuple]]) -> float:
    found = total = 0
    for boxes, faces in zip(truth, fer_faces, strict=True):
        for true_box in boxes:
            total += 1
            found += any(iou(true_box, tuple(f["box"])) >= MATCH_IOU for f in faces)
    return found / total if total else 0.0


def render(rows: list[tuple[str, dict]], report: dict[str, Any]) -> str:
    lines = [f"Machine: {report['machine']['cores']} cores. 640x480 30 fps videos of real face photos, "
             "file mode (every frame, as fast as possible).", "",
             "| video | fer fps | emotiond fps | ratio | recall (fer / ours) | agreement with fer | "
             "p50 / p95 latency ms | CPU ms/frame (fer / ours) | peak RSS MB (fer / ours by process) | lost |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for label, e in rows:
        ours, fer = e["emotiond"], e["fer"]
        rss = ", ".join(f"{k} {v:.0f}" for k, v in sorted(ours["peak_rss_mb"].items()))
        lines.append(f"| {label} | {fer['fps']:.1f} | {ours['fps']:.1f} | **{ours['ratio']:.2f}x** | "
                     f"{fer['recall']:.3f} / {ours['recall']:.3f} | {ours['agreement_with_fer']:.3f} | "
                     f"{ours['latency_p50_ms']:.0f} / {ours['latency_p95_ms']:.0f} | "
                     f"{fer['cpu_per_frame_ms']:.1f} / {ours['cpu_per_frame_ms']:.1f} | "
                     f"{fer['peak_rss_mb']:.0f} / {rss} | {e['lost']} |")
    lines += ["", "Worker time per frame (ms) and the share of CPU spent on bus, serialization and batching:", "",
              "| video | decode | detect | crop | classify | publish | proxy | CPU by process | bus share of CPU |",
              "|---|---|---|---|---|---|---|---|---|"]
    for label, e in rows:
        s = e["emotiond"]["stage_ms"]
        roles = ", ".join(f"{k} {v:.1f}" for k, v in sorted(e["emotiond"]["cpu_ms_by_role"].items()))
        lines.append(f"| {label} | {s['decode']:.2f} | {s['detect']:.2f} | {s['crop']:.2f} | {s['classify']:.2f} | "
                     f"{s['publish']:.2f} | {e['emotiond']['proxy_ms']:.2f} | {roles} | "
                     f"{e['emotiond']['bus_overhead_share']:.1%} |")
    live = report["live"]
    three = ", ".join(f"{k} {v:.1%}" for k, v in live["three_cameras"]["drop_rate"].items())
    lines += ["", "Live mode (paced at 30 fps):", "", "| set-up | dropped | p50 / p95 capture→event ms |",
              "|---|---|---|",
              f"| 1 camera, 1 face | {live['one_camera']['drop_rate']:.1%} | "
              f"{live['one_camera']['latency_p50_ms']:.0f} / {live['one_camera']['latency_p95_ms']:.0f} |",
              f"| 3 cameras (1, 4, 1 faces) | {three} | "
              f"{live['three_cameras']['latency_p50_ms']:.0f} / {live['three_cameras']['latency_p95_ms']:.0f} |"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
