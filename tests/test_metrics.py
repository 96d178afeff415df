"""/metrics during a real run: the counters agree with the events seen, promtool accepts the output, and every
series whose labels are known at start is there at 0 from the first scrape."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from collections import Counter
from typing import get_args

import pytest
from prometheus_client.parser import text_string_to_metric_families

from emotiond.core import metrics
from emotiond.core.protocol import ProtocolError
from emotiond.core.sources import SourceError
from emotiond.workers.finder import DetectionKind

from support.daemon import REPO, metric_value


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


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_first_scrape_has_every_known_series_at_zero(start_daemon, videos, default_model):
    """A dashboard must read 0, not "no data", and rate() needs a series before the first drop or error."""
    daemon = start_daemon("--source", "demo=demo", "--source", f"clip={videos['one_face']}", workers=1)
    samples = _samples(daemon.first_metrics_text())
    emotions = json.loads((default_model / "bundle.json").read_text())["labels"]

    def zero(name: str, **labels: str) -> None:
        key = (name, frozenset(labels.items()))
        assert key in samples, f"{name}{labels} is missing from the first scrape"
        assert samples[key] == 0, f"{name}{labels} = {samples[key]}"

    assert set(metrics.DROP_REASONS) == {"corrupt", "stale", "worker_lost", "shutdown"}
    for camera in ("demo", "clip"):
        for reason in metrics.DROP_REASONS:
            zero("emotiond_frames_dropped_total", camera=camera, reason=reason)
        for reason in metrics.SOURCE_ERROR_REASONS:
            zero("emotiond_source_errors_total", camera=camera, reason=reason)
        for emotion in emotions:  # no result yet: the worker is still loading its model
            zero("emotiond_emotions_total", camera=camera, emotion=emotion)
        zero("emotiond_frames_processed_total", camera=camera)
        zero("emotiond_faces_detected_total", camera=camera)
        zero("emotiond_capture_to_publish_seconds_count", camera=camera)
        assert ("emotiond_frames_captured_total", frozenset({("camera", camera)})) in samples
        assert ("emotiond_source_up", frozenset({("camera", camera)})) in samples
    for stage in metrics.STAGES:
        zero("emotiond_stage_latency_seconds_count", stage=stage)
        zero("emotiond_stage_latency_seconds_bucket", stage=stage, le="+Inf")
    for role in ("proxy", "capture", "worker"):
        zero("emotiond_process_restarts_total", role=role)
    for socket in metrics.BAD_MESSAGE_SOCKETS:
        for reason in metrics.BAD_MESSAGE_REASONS:
            zero("emotiond_bad_messages_total", socket=socket, reason=reason)
    for kind in metrics.DETECTION_KINDS:
        zero("emotiond_detections_total", kind=kind)
    assert daemon.stop() == 0


def _literal_reasons(tree: ast.AST) -> dict[str, set[str]]:
    """First string argument of each ``ProtocolError(...)``/``SourceError(...)``, and the string arguments of each
    ``.labels(...)`` call on a metric attribute, by name."""
    found: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("ProtocolError", "SourceError") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.setdefault(func.id, set()).add(first.value)
        if (isinstance(func, ast.Attribute) and func.attr == "labels" and isinstance(func.value, ast.Attribute)):
            for index, arg in enumerate(node.args):
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.setdefault(f"{func.value.attr}[{index}]", set()).add(arg.value)
    return found


def test_every_counted_reason_is_declared():
    """The reasons initialize() exports at 0 are the reasons the code counts: the lists cannot drift apart."""
    found: dict[str, set[str]] = {}
    for path in (p for folder in ("core", "capture", "workers", "daemon") for p in (REPO / folder).rglob("*.py")):
        for key, values in _literal_reasons(ast.parse(path.read_text(), str(path))).items():
            found.setdefault(key, set()).update(values)
    declared = {
        "ProtocolError": set(metrics.PROTOCOL_ERROR_REASONS),
        "SourceError": set(metrics.SOURCE_FAILURE_REASONS),
        "frames_dropped[1]": set(metrics.DROP_REASONS),
        "source_errors[1]": set(metrics.SOURCE_ERROR_REASONS),
        "bad_messages[0]": set(metrics.BAD_MESSAGE_SOCKETS),
        "bad_messages[1]": set(metrics.BAD_MESSAGE_REASONS),
        "stage_latency[0]": set(metrics.STAGES),
    }
    for key, values in declared.items():
        assert found.get(key), f"no {key} found in the code: has it been renamed?"
        assert found[key] <= values, f"{key}: {sorted(found[key] - values)} counted but not declared"
    assert set(get_args(DetectionKind)) == set(metrics.DETECTION_KINDS)  # counted as detection.kind
    with pytest.raises(ValueError, match="undeclared ProtocolError reason"):
        ProtocolError("bad_mood", "not a declared reason")
    with pytest.raises(ValueError, match="undeclared SourceError reason"):
        SourceError("gone_fishing", "not a declared reason")
