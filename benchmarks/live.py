"""Live runs measured the same way everywhere: per-camera drops, their spread, and latencies.

A live camera drops frames on purpose when the workers cannot keep up (the newest frame wins). What matters
under overload is that every camera drops about the same share: ``fair`` is the limit the team holds to (no
camera's drop rate above 1.5 times another's plus 2 points), and ``spread`` gives the largest and smallest rate,
their ratio and their difference. Every figure is taken after a warm-up (``WARM_UP_SECONDS``), as a camera
that runs for hours would see it; what the warm-up itself dropped is kept beside.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from emotiond.benchmarks import scoring
from emotiond.benchmarks.emotiond_run import DaemonSettings, Run, run_emotiond

FAIR_RATIO, FAIR_POINTS = 1.5, 0.02
WARM_UP_SECONDS = 5.0
VIDEO_FPS = 30.0  # the benchmark videos' rate (capture/synthetic.py)


def _spread_ms(values: list[float]) -> dict[str, float]:
    return {"p50": scoring.percentile(values, 50), "p95": scoring.percentile(values, 95)}


def warm_up_frames(frames: int) -> int:
    """Frames of each camera left out of a live run's figures: the first ``WARM_UP_SECONDS`` (workers load their
    models, place cameras and scan every first frame in full), at most a third of the video."""
    return min(round(WARM_UP_SECONDS * VIDEO_FPS), frames // 3)


def live_entry(run: Run, cameras: list[str], frames: int) -> dict[str, Any]:
    """Drops and latencies of a live run after its warm-up. A camera the daemon stopped serving (no end of stream)
    also counts the frames after its last result, and one with no result dropped everything: a stall must not
    look clean. Drops during the warm-up are reported apart (``warm_up_drops``)."""
    warm = warm_up_frames(frames)
    steady = [(r, at) for r, at in zip(run.results, run.received_at, strict=True) if r.seq >= warm]
    results = [r for r, _ in steady]
    rates = scoring.live_drop_rate(results)
    for camera in cameras:
        seqs = {r.seq for r in results if r.camera == camera}
        if not seqs:
            rates[camera] = 1.0
        elif camera in run.unfinished:
            rates[camera] = 1 - len(seqs) / max(1, frames - min(seqs))
    early = {camera: sum(1 for r in run.results if r.camera == camera and r.seq < warm) for camera in cameras}
    return {"results": len(run.results), "drop_rate": rates, "unfinished": run.unfinished,
            "warm_up_frames": warm, "warm_up_drops": {camera: warm - count for camera, count in early.items()},
            "worker_latency_ms": _spread_ms(scoring.worker_latency_ms(results)),
            "subscriber_latency_ms": _spread_ms(scoring.subscriber_latency_ms(results, [at for _, at in steady]))}


def spread(rates: dict[str, float]) -> dict[str, float | bool]:
    """Largest and smallest drop rate, their ratio (inf when only the smallest is 0) and difference, and whether
    they are within the fairness limit."""
    high, low = max(rates.values()), min(rates.values())
    ratio = high / low if low else (1.0 if not high else float("inf"))
    return {"max": high, "min": low, "ratio": ratio, "points": high - low,
            "fair": high <= FAIR_RATIO * low + FAIR_POINTS}


def alternating(videos: dict[str, Path], cameras: int) -> dict[str, Path]:
    """``cameras`` sources cam0, cam1... alternating the one-face and four-face videos."""
    order = [videos["1 face"], videos["4 faces"]]
    return {f"cam{index}": order[index % 2] for index in range(cameras)}


def multi_camera(videos: dict[str, Path], cameras: int, detector: str, frames: int, daemon: DaemonSettings,
                 work: Path) -> dict[str, Any]:
    """``cameras`` live cameras paced at the videos' 30 fps, alternating one and four faces, with ``detector``."""
    sources = alternating(videos, cameras)
    configured = replace(daemon, flags=(*daemon.flags, "--detector", detector))
    entry = live_entry(run_emotiond(sources, realtime=True, daemon=configured, work=work), list(sources), frames)
    entry.update(cameras=cameras, detector=detector, frames=frames, spread=spread(entry["drop_rate"]))
    return entry


def row(label: str, entry: dict[str, Any]) -> str:
    """A Markdown row: set-up, drops per camera, spread, subscriber p95."""
    rates = ", ".join(f"{rate:.1%}" for _, rate in sorted(entry["drop_rate"].items(), key=lambda kv: int(kv[0][3:])))
    s = entry["spread"]
    ratio = "∞" if s["ratio"] == float("inf") else f"{s['ratio']:.2f}x"
    return (f"| {label} | {rates} | {s['min']:.1%} to {s['max']:.1%} ({ratio}, {s['points'] * 100:.1f} points) | "
            f"{'yes' if s['fair'] else 'no'} | {entry['subscriber_latency_ms']['p95']:.0f} |")


TABLE_HEAD = ["| set-up | drops per camera (cam0 …) | spread (ratio, difference) | fair | subscriber p95 ms |",
              "|---|---|---|---|---|"]
