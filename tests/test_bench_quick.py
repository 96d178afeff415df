"""``emotiond bench --quick``: the README's performance claims as a check that can fail.

One green run against fer (60 frames per video, then one camera paced at 30 fps for 10 s) must pass every limit
and report subscriber-side latency beside the worker's own. Then each limit is shown failing for a real reason,
made through the daemon's settings as a user would make it: a detector set to ignore every face fails recall
(through the environment and through a config file); a finer Haar pyramid fails the ratio to fer; a frame-size
limit one pixel short of the videos' frames loses every frame; a far finer pyramid over every whole frame makes
each live frame take longer than the 33 ms to the next, so frames are dropped and the live p95 latency fails (one
run serves both gates' tests). Each failing run must exit 1, name its gate and still report every other one. The
failing runs reuse the green run's fer figures (``--fer-from``, checked by video hash) so the suite pays for fer
once.

The module runs in the serial phase of ``make test``: the green run measures speed, so nothing else may share
the machine with it. The failing runs then run side by side: each fails on its own gate whatever the load (a
hidden face, a refused frame and a slower pyramid only fail harder on a busy machine), and each reads the green
run's fer figures, measured alone.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from emotiond.benchmarks import checks as limits
from emotiond.capture.synthetic import SceneSpec

from support.daemon import EMOTIOND, REPO, child_env, kill_leftovers, run_cli

FILE_CHECKS = {"lost frames", "recall", "agreement with fer", "throughput ratio to fer"}
LIVE_CHECKS = {"dropped frames share", "subscriber latency p95 ms"}
VIDEOS = {"1 face", "4 faces"}
LIVE = "live 1 camera"
EVERY_CHECK = {(video, name) for video in VIDEOS for name in FILE_CHECKS} | {(LIVE, name) for name in LIVE_CHECKS}
QUICK_FRAMES, LIVE_FRAMES = 60, 300
# Each bench run (fer, then the daemon in file mode and live) may take up to BENCH_LIMIT on a loaded machine, and
# the first test of the module also sets up the green run, so the tests get that plus the usual 300 s.
BENCH_LIMIT = 900
pytestmark = [pytest.mark.timeout(BENCH_LIMIT + 300), pytest.mark.serial, pytest.mark.process]
WORKER_ROUNDING_MS = 0.001  # latency_ms values are rounded to the microsecond
HIDES_EVERY_FACE = "400"  # smallest face side in pixels; the test videos' faces are smaller
# A Haar pyramid step of 1.02 instead of 1.1 makes every scan, full-frame or around a known face, look at about
# five times the scales: emotiond falls far under the 3.0x floor at 1 face. (At 1.04 it landed at 2.1x and 3.1x
# in two runs on 2 cores once still faces were carried and periodic scans went coarse: too close for a test.)
FINE_PYRAMID = "1.02"
# One pixel short of the test videos' 640x480 frames: the workers refuse every frame as oversized.
BELOW_THE_FRAME_SIZE = str(SceneSpec().width * SceneSpec().height - 1)
# Every frame scanned whole (no tracking, whose searches around known faces and coarse periodic scans keep their
# own steps), with a pyramid three times as fine: a frame costs well beyond the 33 ms to the next, so a live camera
# drops a large share and the frames it keeps wait (file mode waits for all, so it loses none). A finer step only
# made the run longer: at 1.01 it took ten minutes beside a busy process.
SLOW_DETECTION = {"EMOTIOND_TRACKING__ENABLED": "false", "EMOTIOND_DETECTION__SCALE_FACTOR": "1.03"}


def _report(out: Path) -> dict[str, Any]:
    return json.loads((out / "quick.json").read_text())


def _checks(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["video"], c["name"]): c for c in report["checks"]}


Bench = tuple[subprocess.CompletedProcess, dict[str, Any]]


def _start_bench_with_green_fer(green: tuple[Any, Path], folder: Path, env_extra: dict[str, str],
                                *flags: str) -> Callable[[], Bench]:
    """Start the quick bench with ``env_extra`` in the daemon's settings, against the green run's fer figures;
    returns what waits for it and reads its report."""
    done, out = green
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]  # positive control: defaults pass
    env = child_env(folder / "run", **env_extra)
    argv = [*EMOTIOND, "bench", "--quick", "--fer-from", str(out / "quick.json"), "--out", str(folder / "out"),
            *flags]
    stdout, stderr = folder / "stdout.txt", folder / "stderr.txt"
    with stdout.open("w") as out_file, stderr.open("w") as err_file:
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out_file, stderr=err_file, text=True)

    def finish() -> Bench:
        try:
            returncode = process.wait(BENCH_LIMIT)
        finally:
            kill_leftovers([process])
        failed = subprocess.CompletedProcess(argv, returncode, stdout.read_text(), stderr.read_text())
        report = _report(folder / "out")
        assert report["fer_from"] == str(out / "quick.json")
        return failed, report

    return finish


def _assert_fails_on(failed: subprocess.CompletedProcess, report: dict[str, Any],
                     gates: set[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Exit status 1, a FAIL line and a summary entry for each of ``gates``, and a line for every other check."""
    assert failed.returncode == 1, failed.stdout[-3000:] + failed.stderr[-3000:]
    checks = _checks(report)
    assert set(checks) == EVERY_CHECK, checks
    for video, name in EVERY_CHECK:
        assert re.search(rf"^(PASS|FAIL) {video}: {name} ", failed.stdout, re.M), (video, name, failed.stdout)
    summary = [line for line in failed.stderr.splitlines() if line.startswith("emotiond bench: FAIL:")]
    assert len(summary) == 1, failed.stderr
    for video, name in gates:
        assert not checks[(video, name)]["passed"], checks[(video, name)]
        assert f"FAIL {video}: {name} " in failed.stdout, failed.stdout
        assert f"{video} {name} " in summary[0], summary
    return checks


@pytest.fixture(scope="module")
def gate_runs(green: tuple[Any, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Bench]:
    """Every failing run, started together once the green run is done, by the name of the gate it breaks."""
    config = tmp_path_factory.mktemp("bench-config") / "site.toml"
    config.write_text(f"[detection]\nmin_size = {HIDES_EVERY_FACE}\n")
    runs: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
        "recall via environment": ({"EMOTIOND_DETECTION__MIN_SIZE": HIDES_EVERY_FACE}, ()),
        "recall via config file": ({}, ("--config", str(config))),
        "ratio": ({"EMOTIOND_DETECTION__SCALE_FACTOR": FINE_PYRAMID}, ()),
        "refused frames": ({"EMOTIOND_BUS__MAX_FRAME_PIXELS": BELOW_THE_FRAME_SIZE}, ()),
        "slow detection": (SLOW_DETECTION, ()),
    }
    started = {name: _start_bench_with_green_fer(green, tmp_path_factory.mktemp("bench-gate"), env_extra, *flags)
               for name, (env_extra, flags) in runs.items()}
    return {name: finish() for name, finish in started.items()}


@pytest.fixture(scope="module")
def green(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    root = tmp_path_factory.mktemp("bench-green")
    done = run_cli("bench", "--quick", "--out", str(root / "out"), env=child_env(root / "run"), timeout=BENCH_LIMIT)
    return done, root / "out"


def test_quick_bench_passes_against_fer(green: tuple[Any, Path]) -> None:
    done, out = green
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "emotiond bench: all checks passed" in done.stdout
    report = _report(out)
    assert report["frames"] == QUICK_FRAMES and report["fer_from"] is None  # fer really ran
    checks = _checks(report)
    assert set(checks) == EVERY_CHECK
    assert all(check["passed"] for check in checks.values()), checks
    assert checks[("1 face", "throughput ratio to fer")]["limit"] == limits.MIN_RATIO["1 face"] == 3.0
    assert checks[("4 faces", "throughput ratio to fer")]["limit"] == limits.MIN_RATIO["4 faces"] == 2.5
    for video, entry in report["file_mode"].items():
        assert entry["lost"] == 0 and entry["results"] == QUICK_FRAMES, video
        assert entry["fer"]["fps"] > 0 and len(entry["fer_raw"]["faces"]) == QUICK_FRAMES, video
    live = report["live"]
    assert live["frames"] == LIVE_FRAMES and "three_cameras" not in live  # one camera, 10 s at 30 fps
    one = live["one_camera"]
    assert one["unfinished"] == [] and 0 < one["subscriber_latency_ms"]["p50"] <= one["subscriber_latency_ms"]["p95"]
    assert "| 1 camera, 1 face |" in (out / "quick.md").read_text()


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
def test_quick_bench_fails_on_recall_when_the_detector_ignores_every_face(gate_runs: dict[str, Bench],
                                                                         via: str) -> None:
    failed, report = gate_runs[f"recall via {via}"]
    checks = _assert_fails_on(failed, report, {(video, "recall") for video in VIDEOS})
    assert "recall 0.000" in failed.stderr, failed.stderr
    for video in VIDEOS:
        assert checks[(video, "recall")]["value"] < limits.MIN_RECALL, checks
        # Every frame still went through the daemon: the failure is the setting's effect on detection.
        assert checks[(video, "lost frames")]["passed"], checks


def test_quick_bench_fails_on_the_ratio_to_fer_when_the_detector_is_slowed(gate_runs: dict[str, Bench]) -> None:
    failed, report = gate_runs["ratio"]
    checks = _assert_fails_on(failed, report, {("1 face", "throughput ratio to fer")})
    assert checks[("1 face", "throughput ratio to fer")]["value"] < limits.MIN_RATIO["1 face"], checks
    for video in VIDEOS:
        # Slower, not worse: every frame arrives and every face is found; only the speed fails.
        assert checks[(video, "lost frames")]["passed"] and checks[(video, "recall")]["passed"], checks


def test_quick_bench_fails_on_lost_frames_when_the_workers_refuse_the_frames(gate_runs: dict[str, Bench]) -> None:
    failed, report = gate_runs["refused frames"]
    checks = _assert_fails_on(failed, report, {(video, "lost frames") for video in VIDEOS}
                              | {(LIVE, "dropped frames share")})
    for video in VIDEOS:
        assert checks[(video, "lost frames")]["value"] == QUICK_FRAMES, checks
        assert report["file_mode"][video]["results"] == 0, video
    assert checks[(LIVE, "dropped frames share")]["value"] == 1.0, checks


def test_quick_bench_fails_on_live_drops_when_frames_take_longer_than_their_interval(
        gate_runs: dict[str, Bench]) -> None:
    failed, report = gate_runs["slow detection"]
    checks = _assert_fails_on(failed, report, {(LIVE, "dropped frames share")})
    assert checks[(LIVE, "dropped frames share")]["value"] > limits.MAX_LIVE_DROP, checks
    assert report["live"]["one_camera"]["unfinished"] == []  # the camera ran to its end: the drops are pacing's
    for video in VIDEOS:
        # File mode waits for every frame, so it loses none and finds every face: the drops are live's own.
        assert checks[(video, "lost frames")]["passed"] and checks[(video, "recall")]["passed"], checks


def test_quick_bench_fails_on_live_latency_when_detection_is_slow(gate_runs: dict[str, Bench]) -> None:
    failed, report = gate_runs["slow detection"]
    checks = _assert_fails_on(failed, report, {(LIVE, "subscriber latency p95 ms")})
    assert checks[(LIVE, "subscriber latency p95 ms")]["value"] > limits.MAX_LIVE_P95_MS, checks
    for video in VIDEOS:
        assert checks[(video, "lost frames")]["passed"] and checks[(video, "recall")]["passed"], checks


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
