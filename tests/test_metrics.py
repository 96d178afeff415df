"""/metrics during a real run: the counters agree with the events seen, and promtool accepts the output."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter

import pytest

from support.daemon import metric_value


@pytest.fixture
def mixed_config(tmp_path, videos):
    """A finite file camera beside an endless paced demo, so the daemon is still up after the file ends."""
    path = tmp_path / "mixed.toml"
    path.write_text(
        f'[[sources]]\nname = "file"\nurl = "{videos["one_face"]}"\n\n'
        '[[sources]]\nname = "demo"\nurl = "demo"\nrealtime = true\nloop = true\nfps = 10\n'
    )
    return path


def test_counters_match_events_and_promtool_accepts(start_daemon, events, mixed_config, default_model):
    daemon = start_daemon("--config", str(mixed_config))
    reader = events(daemon, "--camera", "file", "--until-eos", "--timeout", "120")
    results = reader.wait(130)
    assert len(results) == 60
    text = daemon.metrics_text()

    assert metric_value(text, "emotiond_frames_captured_total", camera="file") == 60
    assert metric_value(text, "emotiond_frames_processed_total", camera="file") == 60
    assert metric_value(text, "emotiond_faces_detected_total", camera="file") == sum(len(r["faces"]) for r in results)
    emotions = Counter(f["emotion"] for r in results for f in r["faces"])
    for emotion, count in emotions.items():
        assert metric_value(text, "emotiond_emotions_total", camera="file", emotion=emotion) == count
    assert metric_value(text, "emotiond_frames_dropped_total", camera="file") == 0
    assert metric_value(text, "emotiond_source_up", camera="demo") == 1
    assert metric_value(text, "emotiond_frames_processed_total", camera="demo") > 0
    for stage in ("decode", "detect", "classify", "publish"):
        assert metric_value(text, "emotiond_stage_latency_seconds_count", stage=stage) > 0
    assert metric_value(text, "emotiond_capture_to_publish_seconds_count", camera="file") == 60
    assert metric_value(text, "emotiond_batch_size_count") > 0
    assert 'le="0.001"' in text and 'le="0.5"' in text
    for name in re.findall(r"^# TYPE (\S+) counter", text, flags=re.M):
        assert name.startswith("emotiond_") or name.startswith("python_") or name.startswith("process_")

    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian prometheus) is installed by `make test`"
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert daemon.stop() == 0
