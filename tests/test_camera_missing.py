"""A camera that is not there: refused at start in one line; while it stays away, retried with backoff and
logged once per change of state, with OpenCV's own messages routed into the log instead of printed raw.

This machine has no /dev/video device, so index 7 and /dev/video7 are missing cameras for real.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest

from support.daemon import EMOTIOND, REPO, child_env, run_cli, wait_for


@pytest.mark.parametrize("source", ["7", "/dev/video7"])
def test_a_missing_camera_is_refused_at_start_in_one_line(source, tmp_path):
    started = time.monotonic()
    done = run_cli("run", "--source", source, "--metrics-port", "0", env=child_env(tmp_path / "rt"), timeout=60)
    took = time.monotonic() - started
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-3000:]
    assert lines == ["emotiond run: source cam0: no camera /dev/video7 on this machine (cameras here: none)"], lines
    assert took < 10, f"took {took:.1f} s"


def test_a_camera_that_stays_away_is_retried_quietly_and_opencv_speaks_through_the_log(tmp_path):
    """``emotiond capture`` has no start-up check, so its reader meets the missing camera as a camera that went
    away: the retries go on (DEBUG lines count them) while WARNING says it once."""
    log_path = tmp_path / "capture.log"
    env = child_env(tmp_path / "rt", EMOTIOND_CAPTURE__RECONNECT_INITIAL_SECONDS="0.05",
                    EMOTIOND_CAPTURE__RECONNECT_MAX_SECONDS="0.2", EMOTIOND_LOGGING__OPENCV="WARNING")
    with log_path.open("w") as out:
        process = subprocess.Popen([*EMOTIOND, "--log-level", "DEBUG", "capture", "--source", "7",
                                    "--metrics-port", "0"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        retries = re.compile(r" DEBUG .*source cam0: cannot open camera 7; retrying")
        wait_for(lambda: len(retries.findall(log_path.read_text())) >= 4, 90, "four quiet retries")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    text = log_path.read_text()
    warned = re.findall(r" WARNING .*source cam0: cannot open camera 7; retrying", text)
    assert len(warned) == 1, text[-4000:]
    opencv = [line for line in text.splitlines() if " emotiond.opencv: " in line]
    opencv_warnings = [line for line in opencv if " WARNING " in line]
    assert any("can't open camera by index" in line for line in opencv_warnings), text[-4000:]  # routed, shown
    said = [line.split(" emotiond.opencv: ", 1)[1] for line in opencv_warnings]
    assert len(said) == len({re.sub(r"@\d+\.\d+|0x[0-9a-f]+", "", line) for line in said}), said  # each once
    assert len(opencv) > len(opencv_warnings), "the repeats went to DEBUG"
    raw = [line for line in text.splitlines() if re.match(r"\[( WARN|ERROR|[\w.,]+ @ 0x)", line)]
    assert raw == [], raw


def test_opencv_messages_below_the_chosen_level_stay_out(tmp_path):
    """The default level (ERROR) keeps OpenCV's warnings out; the positive control above shows them at WARNING."""
    log_path = tmp_path / "capture.log"
    env = child_env(tmp_path / "rt", EMOTIOND_CAPTURE__RECONNECT_INITIAL_SECONDS="0.05",
                    EMOTIOND_CAPTURE__RECONNECT_MAX_SECONDS="0.2")
    with log_path.open("w") as out:
        process = subprocess.Popen([*EMOTIOND, "--log-level", "DEBUG", "capture", "--source", "7",
                                    "--metrics-port", "0"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "retrying" in log_path.read_text(), 90, "a first retry")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    text = log_path.read_text()
    assert not [line for line in text.splitlines() if " WARNING " in line and "emotiond.opencv" in line], text
    raw = [line for line in text.splitlines() if re.match(r"\[( WARN|ERROR|[\w.,]+ @ 0x)", line)]
    assert raw == [], raw
