"""emotiond against the ``fer`` package, measured in one run on one machine (``emotiond bench``).

1. Builds 640x480, 30 fps test videos of real face photos (1 face and 4 faces), with the true boxes.
2. Runs fer 25.10.3 frame by frame with its defaults, in its own venv (never a project dependency).
3. Runs the emotiond daemon end to end in file mode with the user's settings (config file, ``EMOTIOND_*``
   environment, flags), read by a subscriber that stamps each event on receipt; then paced at 30 fps (live)
   with one camera on a 1-face video of at least LIVE_FRAMES frames (10 s), and, unless ``--quick``, with three.
4. Prints a Markdown table (throughput and ratio to fer, wall throughput with start-up, recall, agreement with
   fer, worker-side and subscriber-side latency, CPU per frame, peak RSS, drop rates, CPU breakdown), writes it
   with a JSON copy to --out, and checks the limits of benchmarks/checks.py (file mode: lost frames, recall,
   agreement, ratio to fer per video; live: drops and subscriber p95 of the one camera): exit status 1 when one
   fails, with every check printed.
5. Unless ``--quick``, runs both face detectors side by side on the same videos and fer figures
   (benchmarks/bench_detectors.py) and adds their tables to the report.

``--quick`` (60 frames per video in file mode plus the 10 s one-camera live run, under a minute of emotiond and
one to two of fer) is the form the test suite runs, so every limit is checked by ``make test``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from emotiond.benchmarks import bench_detectors, checks, fer_runner, live, scoring, stage_cpu
from emotiond.benchmarks.emotiond_run import DaemonSettings, Run, RunError, run_emotiond
from emotiond.benchmarks.live import live_entry
from emotiond.benchmarks.report import render
from emotiond.capture import synthetic
from emotiond.core.errors import UsageError
from emotiond.core.lifecycle import exit_on_sigterm
from emotiond.core.settings import load_settings

FULL_FRAMES = 300
QUICK_FRAMES = 60
LIVE_FRAMES = 300  # 10 s at 30 fps: long enough for start-up drops not to decide the live checks
DEFAULT_OUT = Path("benchmarks") / "results"
SIX_CAMERA_DETECTORS = ("haar", "blazeface")
SIX_CAMERA_FRAMES = 600  # 20 s at 30 fps: 15 s measured after the live runs' warm-up


def build_videos(root: Path, frames: int) -> dict[str, Path]:
    return {
        "1 face": synthetic.write_video(root / "one_face.mp4", synthetic.SceneSpec(faces=1, frames=frames)),
        "4 faces": synthetic.write_video(root / "four_faces.mp4", synthetic.SceneSpec(faces=4, frames=frames)),
    }


def live_video(videos: dict[str, Path], frames: int, root: Path) -> tuple[Path, int]:
    """The one-camera live run's 1-face video and its length: the file-mode one when it lasts LIVE_FRAMES."""
    if frames >= LIVE_FRAMES:
        return videos["1 face"], frames
    spec = synthetic.SceneSpec(faces=1, frames=LIVE_FRAMES)
    return synthetic.write_video(root / "one_face_live.mp4", spec), LIVE_FRAMES


def _spread(values: list[float]) -> dict[str, float]:
    return {"p50": scoring.percentile(values, 50), "p95": scoring.percentile(values, 95)}


def _per_frame_ms(seconds: float, run: Run) -> float:
    return seconds / max(1, len(run.results) - 1) * 1000


def file_mode_entry(frames: int, truth: list, fer: dict[str, Any], run: Run) -> dict[str, Any]:
    """Every file-mode figure of one video: fer's and ours, side by side."""
    results = run.results
    fps = scoring.steady_fps(results)
    wall_fps = scoring.wall_fps(len(results), run.wall_seconds)
    fer_wall_fps = scoring.wall_fps(fer["frames"], fer["wall_seconds_with_startup"])
    cpu_per_frame = _per_frame_ms(run.cpu_seconds, run)
    stages = scoring.stage_means(results)
    proxy_ms = _per_frame_ms(run.cpu_by_role.get("proxy", 0.0), run)
    bus_ms = stages["decode"] + stages["publish"] + proxy_ms
    return {
        "frames": frames, "results": len(results), "lost": scoring.lost_frames(results, frames),
        "fer": {"fps": fer["fps"], "wall_fps": fer_wall_fps, "wall_seconds": fer["wall_seconds_with_startup"],
                "cpu_per_frame_ms": fer["cpu_per_frame_ms"], "peak_rss_mb": fer["peak_rss_bytes"] / 2**20,
                "recall": scoring.fer_recall(fer["faces"], truth)},
        "emotiond": {"fps": fps, "ratio": fps / fer["fps"] if fer["fps"] else 0.0,
                     "wall_fps": wall_fps, "wall_ratio": wall_fps / fer_wall_fps if fer_wall_fps else 0.0,
                     "startup_seconds": run.startup_seconds, "wall_seconds": run.wall_seconds,
                     "recall": scoring.recall(results, truth),
                     "agreement_with_fer": scoring.agreement(results, fer["faces"]),
                     "worker_latency_ms": _spread(scoring.worker_latency_ms(results)),
                     "subscriber_latency_ms": _spread(scoring.subscriber_latency_ms(results, run.received_at)),
                     "cpu_per_frame_ms": cpu_per_frame,
                     "peak_rss_mb": {k: v / 2**20 for k, v in run.peak_rss.items()},
                     "stage_ms": stages, "proxy_ms": proxy_ms,
                     "cpu_ms_by_role": {k: _per_frame_ms(v, run) for k, v in run.cpu_by_role.items()},
                     "bus_overhead_share": bus_ms / cpu_per_frame if cpu_per_frame else 0.0},
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_FRAMES} frames per video in file mode and {LIVE_FRAMES // 30} s live with one "
                             "camera; fails on the limits")
    parser.add_argument("--frames", type=int, default=None,
                        help=f"frames per test video (default {FULL_FRAMES}, {QUICK_FRAMES} with --quick)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"folder for latest.md/.json (quick.md/.json with --quick); default {DEFAULT_OUT} "
                             "(none with --quick)")
    parser.add_argument("--fer-from", type=Path, default=None, metavar="JSON",
                        help="reuse fer's figures from an earlier run's latest.json/quick.json (same videos, "
                             "checked by hash) instead of running fer again")
    parser.add_argument("--config", type=Path, default=None, help="the daemon's TOML config (default: "
                        "$EMOTIOND_CONFIG if set)")
    parser.add_argument("--workers", type=int, default=None, help="daemon workers (0: one per core)")
    parser.add_argument("--model", default=None, help="model bundle folder or name in the models cache")
    parser.add_argument("--backend", choices=["litert", "tf"], default=None, help="classifier backend")
    args = parser.parse_args(argv)
    args.frames = args.frames or (QUICK_FRAMES if args.quick else FULL_FRAMES)
    if args.out is None and not args.quick:
        args.out = DEFAULT_OUT
    return args


def daemon_settings(args: argparse.Namespace) -> DaemonSettings:
    """The user's settings for the daemon, validated here so a bad config is a usage error before any run."""
    flags: list[str] = []
    overrides: dict[str, Any] = {}
    if args.workers is not None:
        flags += ["--workers", str(args.workers)]
        overrides["workers"] = {"count": args.workers}
    for flag, value in (("--model", args.model), ("--backend", args.backend)):
        if value is not None:
            flags += [flag, value]
            overrides.setdefault("classifier", {})[flag[2:]] = value
    daemon = DaemonSettings(config=args.config, flags=tuple(flags))
    load_settings(daemon.config_file(), overrides)
    return daemon


def earlier_fer(path: Path) -> dict[str, dict[str, Any]]:
    """fer's raw figures per video from an earlier report, keyed by the video's SHA-256."""
    try:
        report = json.loads(path.read_text())
        return {e["video_sha256"]: e["fer_raw"] for e in report["file_mode"].values()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"--fer-from {path}: not a bench report with fer figures "
                         f"({type(exc).__name__}: {exc})") from exc


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def measure(args: argparse.Namespace, daemon: DaemonSettings, work: Path) -> dict[str, Any]:
    reused = earlier_fer(args.fer_from) if args.fer_from else None
    videos = build_videos(work, args.frames)
    fresh = fer_runner.run_fer(fer_runner.fer_python(), list(videos.values())) if reused is None else {}
    report: dict[str, Any] = {"machine": {"cores": os.cpu_count(), "load": os.getloadavg()[0]},
                              "frames": args.frames, "quick": args.quick,
                              "fer_from": str(args.fer_from) if args.fer_from else None, "file_mode": {}}
    for label, video in videos.items():
        truth = synthetic.load_truth(video)
        digest = _sha256(video)
        if reused is None:
            fer = fresh[video]
        elif digest in reused:
            fer = reused[digest]
        else:
            raise UsageError(f"--fer-from {args.fer_from} has no fer figures for the {label} video of "
                             f"{args.frames} frames; run without --fer-from")
        run = run_emotiond({"cam0": video}, realtime=False, daemon=daemon, work=work)
        entry = file_mode_entry(len(truth), truth, fer, run)
        if run.unfinished and not entry["lost"]:
            raise RunError(f"every frame of the {label} video arrived, but its end of stream never did "
                           "(the daemon's log tail is above)")
        entry.update(video_sha256=digest, fer_raw=fer)
        report["file_mode"][label] = entry
        ours = entry["emotiond"]
        print(f"{label}: fer {fer['fps']:.1f} fps, emotiond {ours['fps']:.1f} fps ({ours['ratio']:.2f}x); "
              f"recall {ours['recall']:.3f}; subscriber latency p50 {ours['subscriber_latency_ms']['p50']:.0f} ms",
              flush=True)
    paced, paced_frames = live_video(videos, args.frames, work)
    one = run_emotiond({checks.LIVE_CAMERA: paced}, realtime=True, daemon=daemon, work=work)
    report["live"] = {"frames": paced_frames,
                      "one_camera": live_entry(one, [checks.LIVE_CAMERA], paced_frames)}
    live_one = report["live"]["one_camera"]
    print(f"live, 1 camera at 30 fps: dropped {live_one['drop_rate'][checks.LIVE_CAMERA]:.1%}; subscriber latency "
          f"p95 {live_one['subscriber_latency_ms']['p95']:.0f} ms", flush=True)
    if not args.quick:
        sources = {"cam0": videos["1 face"], "cam1": videos["4 faces"], "cam2": videos["1 face"]}
        three = run_emotiond(sources, realtime=True, daemon=daemon, work=work)
        report["live"]["three_cameras"] = live_entry(three, list(sources), args.frames)
        report["live"]["six_cameras"] = {}
        six_frames = max(args.frames, SIX_CAMERA_FRAMES)
        six_videos = videos if args.frames >= six_frames else build_videos(work / "six", six_frames)
        for detector in SIX_CAMERA_DETECTORS:  # 3 one-face and 3 four-face cameras at 30 fps, each detector
            six = live.multi_camera(six_videos, 6, detector, six_frames, daemon, work)
            report["live"]["six_cameras"][detector] = six
            print(f"live, 6 cameras, {detector}: {live.row(detector, six)}", flush=True)
        report["stage_cpu"] = stage_cpu.measure(videos)
    if not args.quick:  # both face detectors side by side, on the same videos and fer run (bench_detectors.py)
        fer_by_label = {label: entry["fer_raw"] for label, entry in report["file_mode"].items()}
        report["detectors"] = bench_detectors.compare(videos, fer_by_label, daemon, work)
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    daemon = daemon_settings(args)
    work = Path(tempfile.mkdtemp(prefix="emotiond-bench-"))
    try:
        report = measure(args, daemon, work)
    except (RunError, fer_runner.FerError) as exc:
        print(f"emotiond bench: FAIL: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    found = checks.file_mode_checks(report["file_mode"]) + checks.live_checks(report["live"])
    report["checks"] = [{"video": c.video, "name": c.name, "value": c.value, "limit": c.limit,
                         "passed": c.passed} for c in found]
    markdown = render(report)
    if "stage_cpu" in report:
        markdown += "\n" + stage_cpu.render(report["stage_cpu"])
    if "detectors" in report:
        markdown += "\n" + bench_detectors.render(report["detectors"])
    print(markdown)
    if args.out is not None:
        stem = "quick" if args.quick else "latest"
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{stem}.md").write_text(markdown)
        (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2))
    for check in found:
        print(check.line())
    failed = [c for c in found if not c.passed]
    if failed:
        print("emotiond bench: FAIL: " + "; ".join(f"{c.video} {c.name} {c.figure()}" for c in failed),
              file=sys.stderr)
        return 1
    print("emotiond bench: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
