"""``emotiond bench --quick``: the README's performance claims as a check that can fail.

One green run against fer (60 frames per video) must pass every limit and report subscriber-side latency
beside the worker's own; the same bench with the detector set to ignore every face of these videos, through the
environment or through a config file, must fail on recall. The failing runs reuse the green run's fer figures
(``--fer-from``, checked by video hash) so the suite pays for fer once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from support.daemon import child_env, run_cli

QUICK_CHECKS = {"lost frames", "recall", "agreement with fer", "throughput ratio to fer"}
VIDEOS = {"1 face", "4 faces"}
WORKER_ROUNDING_MS = 0.001  # latency_ms values are rounded to the microsecond
HIDES_EVERY_FACE = "400"  # smallest face side in pixels; the test videos' faces are smaller


def _report(out: Path) -> dict[str, Any]:
    return json.loads((out / "quick.json").read_text())


def _checks(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["video"], c["name"]): c for c in report["checks"]}


@pytest.fixture(scope="module")
def green(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    root = tmp_path_factory.mktemp("bench-green")
    done = run_cli("bench", "--quick", "--out", str(root / "out"), env=child_env(root / "run"), timeout=900)
    return done, root / "out"


def test_quick_bench_passes_against_fer(green: tuple[Any, Path]) -> None:
    done, out = green
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "emotiond bench: all checks passed" in done.stdout
    report = _report(out)
    assert report["frames"] == 60 and report["fer_from"] is None  # fer really ran
    checks = _checks(report)
    assert set(checks) == {(video, name) for video in VIDEOS for name in QUICK_CHECKS}
    assert all(check["passed"] for check in checks.values()), checks
    for video, entry in report["file_mode"].items():
        assert entry["lost"] == 0 and entry["results"] == 60, video
        assert entry["fer"]["fps"] > 0 and len(entry["fer_raw"]["faces"]) == 60, video


def test_quick_bench_reports_latency_where_the_subscriber_sees_it(green: tuple[Any, Path]) -> None:
    done, out = green
    assert done.returncode == 0, done.stderr[-3000:]
    markdown = (out / "quick.md").read_text()
    assert "subscriber latency p50 / p95 ms" in markdown and "worker latency p50 / p95 ms" in markdown
    assert "wall fps (fer / ours)" in markdown
    for video, entry in _report(out)["file_mode"].items():
        ours = entry["emotiond"]
        # Every event reaches the subscriber after its worker published it, through the proxy, so the subscriber's
        # figure is above the worker's; equal figures would mean the bench copied the worker's stamps.
        for q in ("p50", "p95"):
            assert ours["subscriber_latency_ms"][q] > ours["worker_latency_ms"][q] + WORKER_ROUNDING_MS > 0, \
                (video, ours)
        # The wall figure counts from the daemon's start, so it includes the time to the first event.
        assert 0 < ours["startup_seconds"] < ours["wall_seconds"], (video, ours)
        assert ours["wall_fps"] == pytest.approx(entry["results"] / ours["wall_seconds"]), video


@pytest.mark.parametrize("via", ["environment", "config file"])
def test_quick_bench_fails_on_recall_when_the_detector_ignores_every_face(
        green: tuple[Any, Path], tmp_path: Path, via: str) -> None:
    done, out = green
    assert done.returncode == 0, done.stderr[-3000:]  # positive control: same bench, default settings, passes
    env = child_env(tmp_path / "run")
    flags: list[str] = []
    if via == "environment":
        env["EMOTIOND_DETECTION__MIN_SIZE"] = HIDES_EVERY_FACE
    else:
        config = tmp_path / "site.toml"
        config.write_text(f"[detection]\nmin_size = {HIDES_EVERY_FACE}\n")
        flags = ["--config", str(config)]
    failed = run_cli("bench", "--quick", "--fer-from", str(out / "quick.json"), "--out", str(tmp_path / "out"),
                     *flags, env=env, timeout=600)
    assert failed.returncode == 1, failed.stdout[-3000:] + failed.stderr[-3000:]
    assert "emotiond bench: FAIL:" in failed.stderr and "recall 0.000" in failed.stderr, failed.stderr
    report = _report(tmp_path / "out")
    assert report["fer_from"] == str(out / "quick.json")
    checks = _checks(report)
    for video in VIDEOS:
        assert not checks[(video, "recall")]["passed"] and checks[(video, "recall")]["value"] < 0.95, checks
        assert f"FAIL {video}: recall" in failed.stdout
        # Every frame still went through the daemon: the failure is the setting's effect on detection.
        assert checks[(video, "lost frames")]["passed"], checks


@pytest.mark.parametrize(("args", "env_extra", "message"), [
    ((), {"EMOTIOND_DETECTION__MIN_SIZE": "4"}, "detection.min_size"),
    (("--fer-from", "{tmp}/missing.json"), {}, "--fer-from"),
    (("--model", "{tmp}/no-such-bundle", "--fer-from", "{green}"), {}, "the daemon refused its settings"),
])
def test_quick_bench_reports_bad_settings_in_one_line(green: tuple[Any, Path], tmp_path: Path,
                                                         args: tuple[str, ...], env_extra: dict[str, str],
                                                         message: str) -> None:
    env = child_env(tmp_path / "run", **env_extra)
    argv = [a.format(tmp=tmp_path, green=green[1] / "quick.json") for a in args]
    done = run_cli("bench", "--quick", *argv, env=env, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("emotiond bench:") and message in lines[0], done.stderr
    assert "Traceback" not in done.stderr
