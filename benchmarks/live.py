"""Live runs measured the same way everywhere: per-camera drops, their spread, and latencies.

A live camera drops frames on purpose when the workers cannot keep up (the newest frame wins). What matters
under overload is that every camera drops about the same share: ``fair`` is the limit the team holds to (no
camera's drop rate above 1.5 times another's plus 2 points), and ``spread`` gives the largest and smallest rate,
their ratio and their difference.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from emotiond.benchmarks import scoring
from emotiond.benchmarks.emotiond_run import DaemonSettings, Run, run_emotiond

FAIR_RATIO, FAIR_POINTS = 1.5, 0.02


def _spread_ms(values: list[float]) -> dict[str, float]:
    return {"p50": scoring.percentile(values, 50), "p95": scoring.percentile(values, 95)}


def live_entry(run: Run, cameras: list[str], frames: int) -> dict[str, Any]:
    """Drops and latencies of a live run. A camera the daemon stopped serving (no end of stream) also counts
    the frames after its last result, and one with no result dropped everything: a stall must not look clean."""
    rates = scoring.live_drop_rate(run.results)
    for camera in cameras:
        seqs = {r.seq for r in run.results if r.camera == camera}
        if not seqs:
            rates[camera] = 1.0
        elif camera in run.unfinished:
            rates[camera] = 1 - len(seqs) / max(1, frames - min(seqs))
    return {"results": len(run.results), "drop_rate": rates, "unfinished": run.unfinished,
            "worker_latency_ms": _spread_ms(scoring.worker_latency_ms(run.results)),
            "subscriber_latency_ms": _spread_ms(scoring.subscriber_latency_ms(run.results, run.received_at))}


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
    entry.update(cameras=cameras, detector=detector, spread=spread(entry["drop_rate"]))
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
