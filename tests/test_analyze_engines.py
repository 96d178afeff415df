"""``emotiond analyze`` on several processes and on a Dask LocalCluster: the same rows and annotated files as the
local engine, a worker killed mid-task, an interrupted run resumed, segments cut at key frames that lose and
double no frame, and clear errors for a bad or silent scheduler address.

Inputs are two short videos cut into 1-second segments (so each has several), two images and a corrupt
video. Every run is a real ``emotiond analyze`` process with real worker processes.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import psutil
import pytest

from emotiond.capture import synthetic
from emotiond.clients.analyze.engines.cluster import check_scheduler_address
from emotiond.clients.analyze.output import OutputFolder
from emotiond.clients.analyze.plan import plan_input, probe_video
from emotiond.clients.analyze.unit import BUSY_MARK, _frames, _seek, _Segment, open_video
from emotiond.core.errors import UsageError

from support.daemon import EMOTIOND, REPO, free_port, wait_for

TIMING_FIELDS = {"captured_at", "published_at", "latency_ms", "latency_total_ms"}
SEGMENT = ("--chunk-seconds", "1")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("engines-inputs")
    first = synthetic.write_video(root / "clip1.mp4", synthetic.SceneSpec(faces=1, frames=90))
    second = synthetic.write_video(root / "clip2.mp4", synthetic.SceneSpec(faces=2, frames=60))
    stills = []
    for index in (5, 40):
        frame, _ = synthetic.render(synthetic.SceneSpec(faces=2, frames=60), index)
        stills.append(root / f"still{index}.png")
        cv2.imwrite(str(stills[-1]), frame)
    broken = root / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video" * 20)
    return [first, second, *stills, broken]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def analyze(*args: str | Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([*EMOTIOND, "analyze", *map(str, args)], cwd=REPO, env=environment(),
                          capture_output=True, text=True, timeout=timeout)


def start_analyze(*args: str | Path, stdout: Path, stderr: Path) -> subprocess.Popen:
    """In its own session, so the test can end the whole process tree."""
    with stdout.open("w") as out, stderr.open("w") as err:
        return subprocess.Popen([*EMOTIOND, "analyze", *map(str, args)], cwd=REPO, env=environment(),
                                stdout=out, stderr=err, start_new_session=True)


def finish(process: subprocess.Popen, timeout: float = 240) -> int:
    try:
        return process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def without_timing(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in TIMING_FIELDS}


def json_lines(text: str) -> list[dict]:
    return [without_timing(json.loads(line)) for line in text.splitlines() if line.strip()]


def csv_records(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return [without_timing(row) for row in csv.DictReader(handle)]


def frame_digests(video: Path) -> list[str]:
    capture = cv2.VideoCapture(str(video))
    digests = []
    while True:
        ok, pixels = capture.read()
        if not ok:
            break
        digests.append(hashlib.sha1(pixels.tobytes()).hexdigest())
    capture.release()
    return digests


def busy_workers(root_pid: int, suffix: str = ".mp4") -> list[psutil.Process]:
    """Processes under the CLI analysing a video segment now (their title shows the unit)."""
    found = []
    for child in psutil.Process(root_pid).children(recursive=True):
        try:
            title = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if BUSY_MARK in title and suffix in title:
            found.append(child)
    return found


def assert_same_outputs(expected: Path, actual: Path, fmt: str, some_inputs: bool = False) -> None:
    """Same rows (apart from timing) and the same annotated images and frames in both folders (``some_inputs``:
    the second folder holds the outputs of some of the inputs only)."""
    names = sorted(p.name for p in actual.iterdir() if p.is_file())
    if some_inputs:
        names.remove(f"images.{'jsonl' if fmt == 'json' else 'csv'}")
    else:
        assert names == sorted(p.name for p in expected.iterdir() if p.is_file())
    for name in names:
        if name.endswith(".jsonl"):
            assert json_lines((expected / name).read_text()) == json_lines((actual / name).read_text()), name
        elif name.endswith(".csv"):
            assert csv_records(expected / name) == csv_records(actual / name), name
        elif name.endswith(".png"):
            assert (expected / name).read_bytes() == (actual / name).read_bytes(), name
        elif name.endswith(".mp4"):
            assert frame_digests(expected / name) == frame_digests(actual / name), name
    assert any(name.endswith(f".{'jsonl' if fmt == 'json' else 'csv'}") for name in names)


@pytest.fixture(scope="module")
def local_run(inputs, default_model, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The reference: the local engine with two processes."""
    out = tmp_path_factory.mktemp("local") / "out"
    done = analyze(*inputs, "--out", out, "--engine", "local", "--workers", "2", *SEGMENT)
    assert done.returncode == 1, done.stderr  # the broken video fails, the rest is done
    return out, done


def test_local_engine_segments_and_stitches_videos(local_run, inputs):
    out, done = local_run
    assert f"emotiond analyze: {inputs[-1]}: not a readable image or video" in done.stderr
    assert re.search(r"5 files \(0 already complete, 1 failed\), 152 frames, \d+ faces in [\d.]+ s: [\d.]+ frames/s"
                     r" \[local, 2 processes\]", done.stderr), done.stderr
    printed = json_lines(done.stdout)
    assert [(r["camera"], r["seq"]) for r in printed] == (
        [("clip1", n) for n in range(90)] + [("clip2", n) for n in range(60)] + [("still5", 0), ("still40", 0)])
    for clip, frames, starts in (("clip1", 90, [0, 36, 72]), ("clip2", 60, [0, 36])):
        rows = json_lines((out / f"{clip}.jsonl").read_text())
        assert rows == [r for r in printed if r["camera"] == clip]
        began: dict[int, int] = {}
        for row in rows:
            ids = [face["track_id"] for face in row["faces"]]
            assert len(ids) == len(set(ids))
            for track in ids:
                began.setdefault(track, row["seq"])
        # every segment starts its tracks afresh at its key frame, with ids unique in the whole video
        assert sorted(set(began.values())) == starts, began
        assert len(frame_digests(out / f"{clip}.annotated.mp4")) == frames
    assert json_lines((out / "images.jsonl").read_text()) == printed[-2:]
    assert {p.name for p in out.glob("*.png")} == {"still5.annotated.png", "still40.annotated.png"}
    assert not list((out / ".emotiond-analyze").glob("tmp*")), "temporary files left behind"


def test_dask_local_cluster_gives_the_same_results(local_run, inputs, tmp_path):
    expected, reference = local_run
    out = tmp_path / "out"
    done = analyze(*inputs, "--out", out, "--engine", "dask", "--workers", "2", *SEGMENT)
    assert done.returncode == 1, done.stderr
    assert "[dask LocalCluster, 2 workers at tcp://127.0.0.1:" in done.stderr
    assert f"emotiond analyze: {inputs[-1]}: not a readable image or video" in done.stderr
    assert json_lines(done.stdout) == json_lines(reference.stdout)
    assert_same_outputs(expected, out, "json")


@pytest.fixture
def dask_cluster(tmp_path) -> Iterator[str]:
    """A scheduler and one worker started like on any cluster (``dask scheduler``, ``dask worker``), on
    loopback; the address to give to ``--scheduler``."""
    from distributed import Client

    address = f"tcp://127.0.0.1:{free_port()}"
    port = address.rsplit(":", 1)[1]
    processes = []
    try:
        for command in (["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", port,
                         "--dashboard-address", "127.0.0.1:0"],
                        ["distributed.cli.dask_worker", address, "--nthreads", "1", "--nworkers", "1",
                         "--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0"]):
            log = (tmp_path / f"{command[0].rsplit('.', 1)[1]}.log").open("w")
            processes.append(subprocess.Popen([EMOTIOND[0], "-m", *command], cwd=REPO, env=environment(),
                                              stdout=log, stderr=log, start_new_session=True))
        with Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=120)
        yield address
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            finish(process, timeout=30)


def test_an_existing_cluster_gives_the_same_results(local_run, inputs, dask_cluster, tmp_path):
    expected, reference = local_run
    out = tmp_path / "out"
    done = analyze(inputs[1], inputs[2], "--out", out, "--engine", "dask", "--scheduler", dask_cluster, *SEGMENT)
    assert done.returncode == 0, done.stderr
    assert f"[dask cluster at {dask_cluster}]" in done.stderr
    assert json_lines(done.stdout) == [r for r in json_lines(reference.stdout) if r["camera"] in ("clip2", "still5")]
    assert_same_outputs(expected, out, "json", some_inputs=True)


SEGMENT_LABEL = re.compile(r"clip\d\.mp4 \[\d/\d\]")


def unit_indices(inputs: list[Path]) -> dict[str, int]:
    """Each unit's label and its index in the run (the order the run numbers units in: input by input)."""
    found: dict[str, int] = {}
    for input_index, source in enumerate(inputs[:-1]):  # the broken video last has no segments
        for unit in plan_input(input_index, source, source.stem, "csv", None, float(SEGMENT[1])).units:
            found[unit.label] = len(found)
    return found


def listen_ports(process: psutil.Process) -> set[int]:
    return {c.laddr.port for c in process.net_connections("inet") if c.status == psutil.CONN_LISTEN}


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


@dataclass
class KilledRun:
    """A run in which one worker was killed (SIGKILL) while it was analysing a video segment."""

    out: Path
    code: int
    stderr: str
    label: str  # the segment the killed worker was analysing
    unit: int  # its index in the run
    pid: int
    ports: set[int]  # where the killed worker listened: a dask worker's address is one of them
    listening: list  # the listening addresses of every process of the run, just before the kill
    starts: list[dict]  # dask: the start events the scheduler had logged before the kill


def kill_a_busy_worker(process: subprocess.Popen, indices: dict[str, int], dask: bool) -> dict:
    """Stop (SIGSTOP) a worker whose title shows a video segment, so its title and task stay put, then kill it.
    On dask only once the scheduler's log shows that this worker started that very unit (the engine learns
    where each unit runs from those events); until then it runs on and is looked at again."""
    from distributed import Client

    from emotiond.clients.analyze.engines.cluster import EVENT_TOPIC

    root = psutil.Process(process.pid)
    observer = None
    deadline = time.monotonic() + 180
    try:
        while True:
            assert time.monotonic() < deadline, "no worker was caught analysing a video segment"
            assert process.poll() is None, "the run ended before a worker could be killed"
            for candidate in busy_workers(root.pid):
                try:
                    candidate.suspend()
                except psutil.NoSuchProcess:
                    continue
                try:
                    title = " ".join(candidate.cmdline())
                    label = title.split(BUSY_MARK, 1)[1].strip() if BUSY_MARK in title else ""
                    if not SEGMENT_LABEL.fullmatch(label):
                        continue
                    ports = listen_ports(candidate)
                    starts: list[dict] = []
                    if dask:
                        if observer is None:
                            connected = {c.raddr.port for c in candidate.net_connections("inet") if c.raddr}
                            scheduler = listen_ports(root) & connected  # the scheduler runs in the CLI process
                            assert len(scheduler) == 1, (listen_ports(root), connected)
                            observer = Client(f"tcp://127.0.0.1:{scheduler.pop()}", timeout=30)
                        starts = [m for _, m in observer.get_events(EVENT_TOPIC) if "start" in m]
                        its_own = [m for m in starts if port_of(m["start"]) in ports]
                        if not its_own or its_own[-1]["unit"] != indices[label]:
                            continue  # its start event is still on the way
                    listening = [c.laddr for p in [root, *root.children(True)] for c in p.net_connections("inet")
                                 if c.status == psutil.CONN_LISTEN]
                    candidate.kill()
                    candidate.wait(timeout=10)
                    return {"label": label, "unit": indices[label], "pid": candidate.pid, "ports": ports,
                            "listening": listening, "starts": starts}
                except psutil.NoSuchProcess:
                    continue
                finally:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        candidate.resume()
            time.sleep(0.05)
    finally:
        if observer is not None:
            observer.close()


def killed_worker_run(engine: str, inputs: list[Path], folder: Path) -> KilledRun:
    out = folder / "out"
    process = start_analyze(*inputs, "--out", out, "--format", "csv", "--engine", engine, "--workers", "2",
                            *SEGMENT, stdout=folder / "stdout", stderr=folder / "stderr")
    try:
        victim = kill_a_busy_worker(process, unit_indices(inputs), engine == "dask")
    finally:
        code = finish(process)
    return KilledRun(out, code, (folder / "stderr").read_text(), **victim)


class KilledRuns:
    """The killed-worker run of each engine, made when first asked for and kept for the module."""

    def __init__(self, inputs: list[Path], root: Path):
        self.inputs, self.root, self.runs = inputs, root, {}

    def __call__(self, engine: str) -> KilledRun:
        if engine not in self.runs:
            folder = self.root / engine
            folder.mkdir()
            self.runs[engine] = killed_worker_run(engine, self.inputs, folder)
        return self.runs[engine]


@pytest.fixture(scope="module")
def killed_runs(inputs, default_model, tmp_path_factory) -> KilledRuns:
    return KilledRuns(inputs, tmp_path_factory.mktemp("killed"))


def check_killed_run(engine: str, run: KilledRun) -> None:
    """The killed worker held a segment, that segment was run again elsewhere, and nothing is missing."""
    assert run.code == 1, run.stderr  # the broken video fails, the rest is done
    label = re.escape(run.label)
    if engine == "local":
        assert run.ports == set() and run.listening == []
        assert re.search(rf"analysis process w\d+ \(pid {run.pid}\) died \(exit code -9\) while analysing {label}\n",
                         run.stderr), run.stderr
        assert f"running {run.label} again in another process (attempt 2 of 3)" in run.stderr, run.stderr
    else:  # the LocalCluster's scheduler, nannies and workers listen on the loopback interface only
        assert run.listening and all(address.ip == "127.0.0.1" for address in run.listening), run.listening
        assert any(m["unit"] == run.unit and port_of(m["start"]) in run.ports for m in run.starts), run.starts
        # the engine saw the unit start on the killed worker and then start again on another one
        again = re.findall(rf"running {label} again on (tcp://\S+): its worker (tcp://\S+) was lost", run.stderr)
        assert len(again) == 1, run.stderr
        (rerun_on, lost), = again
        assert port_of(lost) in run.ports, (lost, run.ports)
        assert port_of(rerun_on) not in run.ports
    for clip, frames in (("clip1", 90), ("clip2", 60)):
        rows = csv_records(run.out / f"{clip}.csv")
        assert sorted({int(r["seq"]) for r in rows}) == list(range(frames)), clip  # a row per face
        assert len(frame_digests(run.out / f"{clip}.annotated.mp4")) == frames


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_a_worker_killed_mid_task_is_replaced(engine, killed_runs):
    check_killed_run(engine, killed_runs(engine))


def test_both_engines_losing_a_worker_mid_task_give_the_same_rows(killed_runs):
    """CSV this time: both engines, each losing a worker in the middle of a segment, give the same rows."""
    for engine in ("local", "dask"):
        check_killed_run(engine, killed_runs(engine))
    assert_same_outputs(killed_runs("local").out, killed_runs("dask").out, "csv")


def test_an_interrupted_run_resumes(local_run, inputs, tmp_path):
    expected, reference = local_run
    out = tmp_path / "out"
    process = start_analyze(*inputs, "--out", out, "--engine", "local", "--workers", "2", *SEGMENT,
                            stdout=tmp_path / "stdout", stderr=tmp_path / "stderr")
    try:
        # clip1 is complete and clip2's rows are being written: a writer that is not atomic shows half a file
        wait_for(lambda: any((out / ".emotiond-analyze" / "tmp").glob("*clip2.jsonl"))
                 or (out / "clip2.jsonl").exists() or process.poll() is not None, 180, "clip2's first rows")
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        finish(process)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be interrupted"
    manifests = list((out / ".emotiond-analyze").glob("*.json"))
    assert manifests, "no input was complete when the run was killed"
    frames = {"clip1": 90, "clip2": 60}
    for path in (p for p in out.iterdir() if p.is_file()):  # only whole files under their final names
        assert ".tmp" not in path.name and not path.name.startswith("."), path
        stem = path.name.split(".")[0]
        if path.name.endswith(".jsonl") and stem in frames:
            assert len(path.read_text().splitlines()) == frames[stem], path
        elif path.name.endswith(".annotated.mp4"):
            assert len(frame_digests(path)) == frames[stem], path
        elif path.name.endswith(".png"):
            assert cv2.imread(str(path)) is not None, path

    done = analyze(*inputs, "--out", out, "--engine", "local", "--workers", "2", *SEGMENT, "--resume")
    assert done.returncode == 1, done.stderr
    skipped = int(re.search(r"\((\d+) already complete", done.stderr).group(1))
    assert skipped == len(manifests), done.stderr
    assert json_lines(done.stdout) == json_lines(reference.stdout)  # complete inputs are replayed
    assert_same_outputs(expected, out, "json")

    os.utime(inputs[2])  # a changed input is done again; the others are complete
    done = analyze(*inputs, "--out", out, "--engine", "local", "--workers", "1", *SEGMENT, "--resume")
    assert "(3 already complete, 1 failed), 1 frames" in done.stderr, done.stderr
    assert json_lines(done.stdout) == json_lines(reference.stdout)
    assert_same_outputs(expected, out, "json")


@pytest.mark.parametrize("video", ["mp4v", "h264"])
def test_segments_start_exactly_at_their_key_frames(video, tmp_path):
    """Decoding segment by segment gives every frame of the file once, in order (also with B-frames)."""
    source = synthetic.write_video(tmp_path / "scene.mp4", synthetic.SceneSpec(faces=1, frames=75))
    if video == "h264":
        encoded = tmp_path / "scene-h264.mp4"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(source), "-c:v", "libx264", "-g", "20", "-bf", "2",
                        str(encoded)], check=True, timeout=120)
        source = encoded
    index = probe_video(source)
    assert index is not None and index.frames == 75 and len(index.keyframes) > 2
    plan = plan_input(0, source, "scene", "json", None, 0.5)
    assert len(plan.units) >= 3 and all(u.start in index.keyframes for u in plan.units)
    whole = []
    capture = open_video(str(source))
    while (read := capture.read())[0]:
        whole.append(read[1])
    capture.release()
    pieces = []
    for unit in plan.units:
        capture = open_video(unit.path)
        segment = _Segment(capture, capture.get(cv2.CAP_PROP_FPS))
        _seek(unit, segment)
        assert segment.timestamps_agree, unit  # seeking landed on the key frame, no decoding from the start
        pieces.extend(_frames(unit, segment))
        segment.capture.release()
    assert len(pieces) == len(whole) == 75
    assert all(np.array_equal(a, b) for a, b in zip(pieces, whole, strict=True))


def test_one_run_per_output_folder(tmp_path):
    first = OutputFolder(tmp_path / "out")
    first.open()
    try:
        with pytest.raises(UsageError, match="another emotiond analyze is writing there"):
            OutputFolder(tmp_path / "out").open()
    finally:
        first.close()
    second = OutputFolder(tmp_path / "out")
    second.open()  # free again once the first run has ended
    second.close()


@pytest.mark.parametrize("address", ["localhost:8786", "tcp://", "tcp://host", "http://host:8786", "tcp://host:99999",
                                     "tcp://host:8786/path", "tcp://user@host:8786", "tcp://" + "h" * 300 + ":1"])
def test_bad_scheduler_addresses_are_refused(address):
    with pytest.raises(UsageError, match=r"^--scheduler"):
        check_scheduler_address(address)


@pytest.mark.parametrize("address", ["tcp://10.0.0.5:8786", "tls://scheduler.example:8786", "tcp://[::1]:8786"])
def test_scheduler_addresses(address):
    check_scheduler_address(address)


def test_scheduler_errors_are_one_line(inputs, default_model, tmp_path):
    done = analyze(inputs[2], "--engine", "dask", "--scheduler", "localhost:8786")
    assert done.returncode == 2 and done.stderr.startswith("emotiond analyze: --scheduler 'localhost:8786': expected")
    assert "Traceback" not in done.stderr
    done = analyze(inputs[2], "--scheduler", "tcp://127.0.0.1:8786")
    assert done.returncode == 2 and "--scheduler needs --engine dask" in done.stderr
    silent = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    done = analyze(inputs[2], "--engine", "dask", "--scheduler", silent, "--connect-timeout", "1")
    assert done.returncode == 2, done.stderr
    assert f"emotiond analyze: --scheduler {silent}: no dask scheduler answered within 1 s" in done.stderr
    assert "Traceback" not in done.stderr
