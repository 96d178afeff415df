"""The README's quick start, pasted: every shell block of it runs in a fresh shell after the set-up line, against
the demo, and ends with everything it started.

The set-up block (``make demo`` and activating the venv) runs in the checkout, among the heavy tests: ``make test``
has just done that set-up itself. Every later block runs in a fresh ``bash`` that has only activated the venv,
in a folder of its own. Each block runs with ``set -e``, so any
failing command fails it. So that runs from several checkouts never collide, each block gets its own runtime
folder, ``/metrics`` on any free port, and the web console's 8108 replaced by a free port.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from support.daemon import REPO, child_env, free_port

BLOCK_SECONDS = 150  # a block's own commands take seconds; a loaded machine loads models slowly


def quick_start_blocks() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


BLOCKS = quick_start_blocks()


def session_ended(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def paste(block: str, cwd: Path, tmp_path: Path, setup: bool = False) -> subprocess.CompletedProcess:
    """``block`` in a fresh bash, as if pasted; fails the test if it leaves a process behind."""
    port = free_port()
    text = block.replace("8108", str(port))
    prologue = "set -e\n" if setup else f"set -e\n. {REPO}/.venv/bin/activate\n"
    env = child_env(tmp_path / f"rt-{len(list(tmp_path.glob('rt-*')))}", EMOTIOND_METRICS__PORT="0",
                    EMOTIOND_WEB__PORT=str(port))
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"  # a fresh shell: no venv on PATH until the block's own line
    process = subprocess.Popen(["bash", "-c", prologue + text], cwd=cwd, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = process.communicate(timeout=BLOCK_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"block did not finish in {BLOCK_SECONDS} s:\n{block}\n{err[-3000:]}")
    if not session_ended(process.pid, 60):
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"block left processes running:\n{block}")
    assert process.returncode == 0, f"block failed ({process.returncode}):\n{block}\n{err[-3000:]}"
    return subprocess.CompletedProcess(block, 0, out, err)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_the_quick_start_has_its_four_blocks():
    assert len(BLOCKS) == 4, f"the quick start's shell blocks changed ({len(BLOCKS)}): update this test's checks"
    assert "make demo" in BLOCKS[0] and ". .venv/bin/activate" in BLOCKS[0]


@pytest.mark.heavy  # make demo again (make test's own deps did the set-up): 30 s on a loaded machine; CI runs it
def test_set_up(tmp_path, default_model):
    done = paste(BLOCKS[0], REPO, tmp_path, setup=True)
    results = json_lines(done.stdout)
    assert results and all(r["camera"] == "cam0" for r in results), done.stdout[-2000:]


def test_watch_the_events(tmp_path, default_model):
    done = paste(BLOCKS[1], tmp_path, tmp_path)
    lines = json_lines(done.stdout)
    assert len([line for line in lines if "seq" in line and "faces" in line]) >= 5, done.stdout[-2000:]
    assert len([line for line in lines if line.get("event") == "appeared"]) >= 2, done.stdout[-2000:]


def test_open_the_web_console(tmp_path, default_model):
    done = paste(BLOCKS[2], tmp_path, tmp_path)
    replies = json_lines(done.stdout)
    assert replies[0]["status"] == "ok" and "cam0" in json.dumps(replies[-1]), done.stdout[-2000:]


def test_analyse_a_photo(tmp_path, default_model):
    done = paste(BLOCKS[3], tmp_path, tmp_path)
    photos = json_lines(done.stdout)
    assert len(photos) == 1 and photos[0]["faces"][0]["emotion"] == "happy", done.stdout[-2000:]
    assert (tmp_path / "annotated" / "astronaut.annotated.png").stat().st_size > 0
