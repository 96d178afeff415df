"""``emotiond events`` that hears nothing says so on stderr, where it listened, with a hint when no daemon's
socket is there; with ``--timeout`` it then exits 3. A publisher that speaks (the positive control) gets no
notice and exit 0, and status lines come out as compact as results.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

from emotiond.clients.events.silence import EXIT_NOTHING_HEARD
from emotiond.core import protocol

from support.clients import CraftedPublisher, crafted_result
from support.daemon import EMOTIOND, REPO, child_env


def events(runtime: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*EMOTIOND, "events", *args], cwd=REPO, env=child_env(runtime), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_no_daemon_socket_names_the_endpoint_and_hints_then_exits_3(tmp_path):
    runtime = tmp_path / "rt"
    process = events(runtime, "--timeout", "4")
    out, err = process.communicate(timeout=90)
    socket_file = runtime / "results.sock"
    assert process.returncode == EXIT_NOTHING_HEARD == 3, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"nothing heard for 3 s on ipc://{socket_file}; no daemon socket at {socket_file} yet" in lines[0], lines[0]
    assert "emotiond run --source demo --realtime --loop" in lines[0]


def test_a_silent_socket_gets_the_notice_without_the_hint_and_a_speaking_one_none(tmp_path):
    runtime = tmp_path / "rt"
    runtime.mkdir()
    endpoint = f"ipc://{runtime / 'results.sock'}"
    publisher = CraftedPublisher(endpoint)
    try:
        silent = events(runtime, "--timeout", "4")
        out, err = silent.communicate(timeout=90)
        assert silent.returncode == 3 and out == "", err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and f"nothing heard for 3 s on {endpoint}" in lines[0], err
        assert "no daemon socket" not in lines[0] and "a daemon's socket is there" in lines[0], lines[0]

        speaking = events(runtime, "--timeout", "60", "--status", "--count", "3")
        stop = threading.Event()

        def publish() -> None:
            seq = 0
            while not stop.is_set():
                publisher.sock.send_multipart(protocol.encode_status(
                    protocol.Status("cam0", "up", "reading demo", time.time(), seq)))
                publisher.publish(crafted_result("cam0", seq))
                seq += 1
                stop.wait(0.2)

        thread = threading.Thread(target=publish, daemon=True)
        thread.start()
        try:
            out, err = speaking.communicate(timeout=90)
        finally:
            stop.set()
            thread.join(5)
    finally:
        publisher.close()
    assert speaking.returncode == 0, err
    assert "nothing heard" not in err, err
    lines = out.strip().splitlines()
    assert len(lines) >= 3, out
    statuses = [line for line in lines if line.startswith('{"status":')]
    assert statuses, out
    for line in lines:
        assert line == json.dumps(json.loads(line), separators=(",", ":")), f"not compact: {line}"
