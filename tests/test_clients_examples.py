"""The subscriber examples (Python with pyzmq + msgpack only, Node.js with zeromq + @msgpack/msgpack) decode
the same results as ``emotiond events`` from a live daemon."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support.daemon import REPO


def start(command: list[str], out: Path, env: dict[str, str], cwd: Path = REPO) -> subprocess.Popen:
    with out.open("w") as fh:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=fh, stderr=subprocess.PIPE, text=True)


def lines(path: Path) -> dict[int, dict]:
    return {r["seq"]: r for r in (json.loads(line) for line in path.read_text().splitlines() if line.strip())}


def test_python_and_node_examples_match_emotiond_events(start_daemon, events, videos, default_model, node_example,
                                                        tmp_path):
    python_example = REPO / "examples" / "subscriber.py"
    source = python_example.read_text()
    assert "import daemon" not in source and "from daemon" not in source and "clients" not in source

    daemon = start_daemon("--source", f"tv={videos['two_faces']}")
    endpoint = daemon.results_endpoint
    reference = events(daemon, "--until-eos", "--timeout", "120")
    py = start([sys.executable, str(python_example), endpoint], tmp_path / "py.jsonl", daemon.env)
    js = start(["node", "subscriber.js", endpoint], tmp_path / "node.jsonl", daemon.env, cwd=node_example)
    try:
        assert daemon.process.wait(120) == 0, daemon.log()[-2000:]
        expected = {r["seq"]: r for r in reference.wait(30)}
        assert py.wait(30) == 0, py.stderr.read()
        assert js.wait(30) == 0, js.stderr.read()
    finally:
        for process in (py, js):
            if process.poll() is None:
                process.kill()
                process.wait(5)

    assert sorted(expected) == list(range(45))
    assert sum(len(r["faces"]) for r in expected.values()) >= 80
    assert lines(tmp_path / "py.jsonl") == expected
    assert lines(tmp_path / "node.jsonl") == expected
