"""The CI form of benchmarks/soak.py: a looping file for two minutes, a worker SIGKILLed every 24 s,
no frame lost, RSS and descriptors flat. ``benchmarks/soak.py --long`` runs the same for 30 minutes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support.daemon import REPO


@pytest.mark.slow
def test_short_soak_loses_no_frame_and_stays_flat(tmp_path, default_model):
    out = tmp_path / "soak.json"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "soak.py"), "--duration", "120",
                             "--kill-every", "24", "--json", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=250)
    summary = json.loads(out.read_text())
    print(result.stdout[-2500:])
    assert summary["kills"] >= 4
    assert summary["missing_frames"] == 0, summary["missing_examples"]
    assert summary["rss_growth"] <= 1.25 and summary["fds_max_growth"] <= 16, summary
    assert summary["exit_code"] == 0 and result.returncode == 0, result.stdout[-2000:]
