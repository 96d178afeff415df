"""Every port and folder the daemon and its clients bind: taken or unusable, each is one line and exit 2.

Each case takes the port for real (a listening socket of this test) or puts a file where a folder is wanted,
runs the real command, and reads its stderr: one line, naming what wanted the port or folder and where, and
no traceback. The ports are checked before any process starts, so no case loads a model or opens a camera.
"""

from __future__ import annotations

import fcntl
import socket
from collections.abc import Iterator

import pytest

from support.daemon import child_env, run_cli


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def assert_one_line(done, *expected: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, f"exit {done.returncode}:\n{done.stderr[-3000:]}"
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    for text in expected:
        assert text in lines[0], lines[0]


PORT_CASES = {
    # name: (command before the port, env var that takes the port (None: the flag), expected words)
    "run /metrics": (["run", "--source", "demo", "--metrics-port"], None, "the daemon's /metrics"),
    "capture /metrics": (["capture", "--source", "demo", "--metrics-port"], None, "the daemon's /metrics"),
    "worker /metrics": (["worker", "--metrics-port"], None, "the daemon's /metrics"),
    "log /metrics": (["log", "--out", "{tmp}/logs", "--metrics-port"], None, "the logger's /metrics"),
    "mqtt /metrics": (["mqtt", "--metrics-port"], None, "the MQTT bridge's /metrics"),
    "run [web] port": (["run", "--source", "demo", "--metrics-port", "0"], "EMOTIOND_WEB__PORT", "the web console"),
    "run frames socket": (["run", "--source", "demo", "--metrics-port", "0"], "EMOTIOND_BUS__FRAMES_ENDPOINT",
                          "the frames socket"),
    "run results_in socket": (["run", "--source", "demo", "--metrics-port", "0"],
                              "EMOTIOND_BUS__RESULTS_IN_ENDPOINT", "the results_in socket"),
    "run results socket": (["run", "--source", "demo", "--metrics-port", "0"], "EMOTIOND_BUS__RESULTS_ENDPOINT",
                           "the results socket"),
}


@pytest.mark.parametrize("case", list(PORT_CASES))
def test_a_taken_port_is_one_line_and_exit_2(case, taken_port, tmp_path):
    command, variable, what = PORT_CASES[case]
    command = [part.replace("{tmp}", str(tmp_path)) for part in command]
    extra: dict[str, str] = {}
    if variable is None:
        command.append(str(taken_port))
    elif variable == "EMOTIOND_WEB__PORT":
        extra = {"EMOTIOND_WEB__ENABLED": "true", variable: str(taken_port)}
    else:
        extra = {variable: f"tcp://127.0.0.1:{taken_port}"}
    done = run_cli(*command, env=child_env(tmp_path / "rt", **extra), timeout=90)
    assert_one_line(done, f"cannot listen for {what} on 127.0.0.1:{taken_port}", "already in use",
                    "choose another with")


def test_runtime_folder_held_by_another_daemon(tmp_path):
    runtime = tmp_path / "rt"
    runtime.mkdir(mode=0o700)
    with (runtime / "daemon.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running daemon holds
        done = run_cli("run", "--source", "demo", "--metrics-port", "0", env=child_env(runtime), timeout=120)
    assert_one_line(done, f"another emotiond is running with runtime dir {runtime}")


FOLDER_CASES = {
    "run runtime folder": (["run", "--source", "demo", "--metrics-port", "0"], "runtime", "the runtime folder"),
    "log --out": (["log", "--out", "{file}"], "out", "log files"),
    "analyze --out": (["analyze", "{photo}", "--out", "{file}"], "out", "annotated files and results"),
    "view --snapshots": (["view", "--snapshots", "{file}"], "out", "snapshots"),
}


@pytest.mark.parametrize("case", list(FOLDER_CASES))
def test_a_file_where_a_folder_goes_is_one_line_and_exit_2(case, tmp_path):
    command, which, what = FOLDER_CASES[case]
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file\n")
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"")  # never read: the folder is checked first
    command = [part.replace("{file}", str(blocker)).replace("{photo}", str(photo)) for part in command]
    runtime = blocker if which == "runtime" else tmp_path / "rt"
    done = run_cli(*command, env=child_env(runtime), timeout=90)
    assert_one_line(done, f"cannot write {what} into {blocker}", "not a folder", "choose another with")
