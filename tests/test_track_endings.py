"""Every track ends, and a reader that falls behind is told.

Two real daemons: the demo (end of stream; a face that changes expression; readers of ``emotiond events``, one of
them not read for a while) and a live network camera served by ffmpeg (down and back within the grace period,
down past it, back, its worker killed, SIGTERM) with the MQTT bridge publishing to a real Mosquitto. The small
pieces they rest on (wire format, gap causes, change events, the demo's expression schedule) are checked alone
first.
"""

from __future__ import annotations

import dataclasses
import fcntl
import io
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
import zmq

from emotiond.capture import synthetic
from emotiond.capture.sources import DEMO_SPEC
from emotiond.clients.changes import ChangeDetector
from emotiond.clients.events.missed import MissedResults
from emotiond.clients.gaps import CAUSES, NOT_PUBLISHED, READER_SLOW, Gap, GapWatch
from emotiond.clients.mqtt.events import TrackEvents
from emotiond.core import protocol

from support.clients import crafted_result
from support.daemon import EMOTIOND, REPO, BusWatcher, child_env, child_pids, free_port, kill_leftovers, wait_for
from support.mqtt import tracked_result
from support.streams import StreamServer
from support.tools import require_tool

# A reconnect here takes under a second (a few under load); being down past this ends the tracks, well before the
# MQTT bridge would end them as stale (10 s without a sighting), which the test tells apart by their end_time.
GRACE_SECONDS = 4.0


# ---------------------------------------------------------------- the pieces alone

def test_tracks_ended_round_trips_and_bad_ids_are_refused():
    message = protocol.TracksEnded("door", (0, 101), "eos", 1_700_000_000.5, 299, "w1")
    decoded = protocol.decode(protocol.encode_tracks_ended(message))
    assert decoded == message
    control = protocol.Control("end", "capture", 7, camera="door", seq=12, tracks=(5, 6), reason="worker_lost")
    assert protocol.decode(protocol.encode_control(control)) == control
    body = {"kind": "tracks", **message.to_dict()}
    for bad in ([-1], ["7"], [True], list(range(protocol.MAX_TRACKS + 1))):
        parts = [b"tracks.door", protocol._pack({**body, "ended_tracks": bad}), b""]
        with pytest.raises(protocol.ProtocolError) as refused:
            protocol.decode(parts)
        assert refused.value.reason == "bad_header"


def test_gaps_are_found_with_their_likely_cause_also_at_end_of_stream():
    watch = GapWatch(reorder_window=4, max_wait=60.0)

    def see(seq: int, drain: float, full: float | None) -> list:
        return watch.see(crafted_result("cam", seq), drain, full)

    assert see(0, 1.0, None) == [] and see(1, 2.0, None) == []
    see(5, 3.0, None)  # 2..4 missing, no full queue: the daemon did not publish them
    gaps = see(10, 4.0, None)
    assert [(g.first_seq, g.last_seq, g.cause) for g in gaps] == [(2, 4, NOT_PUBLISHED)]
    gaps = see(20, 5.0, 4.0)  # 11..19 missing, and the drain that brought seq 10 found the queue full
    assert [(g.first_seq, g.last_seq, g.cause) for g in gaps] == [(6, 9, NOT_PUBLISHED)]
    eos = protocol.Status("cam", "eos", "end of stream", time.time(), 30)
    gaps = watch.see(eos, 6.0, 5.0)  # and so did the one that brought seq 20: 21..29 were dropped for it too
    assert [(g.first_seq, g.last_seq, g.missed, g.cause) for g in gaps] == [
        (11, 19, 9, READER_SLOW), (21, 29, 9, READER_SLOW)]
    assert "seq 11..19" in gaps[0].describe() and "fell behind" in gaps[0].describe()
    assert (watch.gaps, watch.missed) == (4, 25)


def test_unpublished_gaps_are_summed_per_camera_and_lost_ones_told_at_once():
    """A live camera's stale frames leave many small holes a second: they are told at most once per period per
    camera, and the rest at exit; holes this reader lost are told one line each, at once."""
    clock = [0.0]
    out = io.StringIO()
    missed = MissedResults(out, every=10.0, clock=lambda: clock[0])
    for seq in range(5, 60, 5):  # eleven one-frame holes within a second
        missed.report(Gap("door", seq, seq, at=0.0, cause=NOT_PUBLISHED))
        clock[0] += 0.05
    missed.report(Gap("door", 70, 79, at=0.0, cause=READER_SLOW))
    missed.report(Gap("yard", 3, 4, at=0.0, cause=NOT_PUBLISHED))
    lines = out.getvalue().splitlines()
    assert lines == ["emotiond events: camera door: missed 1 result(s), seq 5..5: " + CAUSES[NOT_PUBLISHED],
                     "emotiond events: " + Gap("door", 70, 79, at=0.0, cause=READER_SLOW).describe(),
                     "emotiond events: camera yard: missed 2 result(s), seq 3..4: " + CAUSES[NOT_PUBLISHED]]
    clock[0] = 10.1
    missed.report(Gap("door", 90, 90, at=0.0, cause=NOT_PUBLISHED))  # the period is over: told with the rest
    missed.flush()
    assert out.getvalue().splitlines()[3:] == [
        "emotiond events: camera door: missed 11 result(s) in 11 gaps, seq 10..90: " + CAUSES[NOT_PUBLISHED]]
    assert missed.missed == 11 + 10 + 2 + 1


def test_a_stopped_camera_ends_its_tracks_in_change_events_and_mqtt():
    changes, events = ChangeDetector(), TrackEvents(update_interval=60.0)
    for seq in range(3):
        result = tracked_result("door", seq, {7: "happy", 9: "sad"})
        list(changes.feed(result))
        list(events.feed(result, now=float(seq)))
    ended = protocol.TracksEnded("door", (7, 9), "down", time.time(), 2, "w1")
    assert [(e["event"], e["track_id"], e["reason"]) for e in changes.feed(ended)] == [
        ("disappeared", 7, "down"), ("disappeared", 9, "down")]
    assert changes.open_tracks("door") == []
    assert [(e["type"], e["after"]["track_id"]) for e in events.end(ended, now=3.0)] == [("end", 7), ("end", 9)]
    assert events.live("door") == []


def test_the_demo_face_smiles_and_stops_in_every_pass():
    """The default model calls the two photos neutral and happy (checked end to end below); here the schedule."""
    for start in (0, DEMO_SPEC.frames, 5 * DEMO_SPEC.frames):
        weights = [synthetic.smile_weight(DEMO_SPEC, start + i) for i in range(DEMO_SPEC.frames)]
        assert weights[0] == 0.0 and weights[-1] == 0.0 and max(weights) == 1.0
        assert sum(w == 1.0 for w in weights) >= DEMO_SPEC.fps  # a full smile for at least a second
    plain = synthetic.SceneSpec(faces=2, frames=DEMO_SPEC.frames)
    middle = DEMO_SPEC.frames // 2
    assert synthetic.render(plain, middle)[1] == synthetic.render(DEMO_SPEC, middle)[1]  # same place and size
    assert not (synthetic.render(plain, middle)[0] == synthetic.render(DEMO_SPEC, middle)[0]).all()


# ---------------------------------------------------------------- the demo, end to end

@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, default_model) -> dict:
    """One pass of the demo on two workers, read by ``events --changes`` and by ``events`` (both ``--until-eos``),
    and watched on the bus."""
    folder = tmp_path_factory.mktemp("demo")
    env = child_env(folder / "run")
    processes: list[subprocess.Popen] = []

    def events(name: str, *args: str) -> subprocess.Popen:
        with (folder / f"{name}.out").open("w") as out, (folder / f"{name}.err").open("w") as err:
            process = subprocess.Popen([*EMOTIOND, "events", "--until-eos", "--timeout", "150", *args], cwd=REPO,
                                       env=env, stdout=out, stderr=err)
        processes.append(process)
        return process

    with (folder / "daemon.log").open("w") as daemon_log:
        daemon = subprocess.Popen([*EMOTIOND, "run", "--metrics-port", str(free_port()), "--workers", "2",
                                   "--source", "demo"], cwd=REPO, env=env, stdout=daemon_log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    processes.append(daemon)
    watcher = BusWatcher(f"ipc://{folder / 'run' / 'results'}.sock", kinds=("result", "status", "tracks"))
    try:
        readers = {"changes": events("changes", "--changes"), "results": events("results")}
        codes = {name: process.wait(160) for name, process in readers.items()}
        assert daemon.wait(60) == 0, (folder / "daemon.log").read_text()[-3000:]
        return {"codes": codes, "stderr": {name: (folder / f"{name}.err").read_text() for name in readers},
                "lines": {name: [json.loads(line) for line in (folder / f"{name}.out").open()] for name in readers},
                "bus": [m for _, m in list(watcher.received)]}
    finally:
        watcher.close()
        kill_leftovers(processes)


def test_end_of_stream_ends_every_track_and_the_demo_face_changes_expression(demo_run):
    assert demo_run["codes"]["changes"] == 0, demo_run["stderr"]["changes"][-2000:]
    changes = demo_run["lines"]["changes"]
    appeared = {e["track_id"] for e in changes if e["event"] == "appeared"}
    disappeared = [e for e in changes if e["event"] == "disappeared"]
    assert len(appeared) >= 2, changes
    assert {e["track_id"] for e in disappeared} == appeared
    assert {e.get("reason") for e in disappeared} == {"eos"}
    changed = [e for e in changes if e["event"] == "changed"]
    print(f"demo: {len(appeared)} tracks, changes {[(e['seq'], e['previous'], e['emotion']) for e in changed]}")
    assert {(e["previous"], e["emotion"]) for e in changed} >= {("neutral", "happy")}, changes
    # on the bus, the tracks end before end of stream is announced
    kinds = [type(m).__name__ if isinstance(m, protocol.TracksEnded) else m.state for m in demo_run["bus"]
             if isinstance(m, protocol.TracksEnded | protocol.Status)]
    assert kinds.index("TracksEnded") < kinds.index("eos"), kinds


def test_a_reader_that_keeps_up_gets_every_result_and_reports_no_gap(demo_run):
    """The positive control of the next test, on the real daemon: two workers reorder results, which is no gap."""
    assert demo_run["codes"]["results"] == 0 and "missed" not in demo_run["stderr"]["results"]
    assert sorted(r["seq"] for r in demo_run["lines"]["results"]) == list(range(DEMO_SPEC.frames))


def test_cameras_moved_between_workers_leave_no_track_open(start_daemon, tmp_path, default_model):
    """Six cameras on one worker, then a second worker joins (as one on another host does when its link comes up):
    the first has opened tracks on every camera and still holds their frames when the second takes some of them
    over. Every track any worker opened ends before the daemon stops: at end of stream, where its face left (a
    result's ended_tracks), or "moved" where its camera left; none at "stop".

    The second worker loads its model alongside the daemon, with its sockets in a folder of its own where the
    daemon's are not yet: it joins once they are linked there, so its join waits for no model load, and file
    sources (which wait for the workers, dropping nothing) still have most of their frames to go."""
    clip = synthetic.write_video(tmp_path / "two.mp4", synthetic.SceneSpec(faces=2, frames=60, width=320,
                                                                            height=240))
    cameras = [f"cam{index}" for index in range(6)]
    daemon = start_daemon(*(f"--source={camera}={clip}" for camera in cameras), workers=1)
    watcher = BusWatcher(daemon.results_endpoint, kinds=("result", "status", "tracks"))
    later = tmp_path / "joiner-run"
    later.mkdir(mode=0o700)
    with (tmp_path / "w2.log").open("w") as log:
        joiner = subprocess.Popen([*EMOTIOND, "worker", "--name", "w2", "--runtime-dir", str(later),
                                   "--metrics-port", "0"], cwd=REPO, env=daemon.env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def tracked_on(worker: str) -> set[str]:
            return {r.camera for r in watcher.results() if r.worker == worker
                    and any(face.track_id is not None for face in r.faces)}

        daemon.wait_for(lambda: tracked_on("w1") == set(cameras), 90, "tracks on every camera on the first worker")
        def joiner_ready() -> bool:
            assert joiner.poll() is None, (tmp_path / "w2.log").read_text()[-3000:]
            return "worker w2 ready" in (tmp_path / "w2.log").read_text()

        wait_for(joiner_ready, 90, "the second worker's model")
        for socket_name in ("frames.sock", "results_in.sock"):
            (later / socket_name).symlink_to(daemon.runtime_dir / socket_name)
        moved = daemon.wait_for(lambda: [m for _, m in list(watcher.received)
                                         if isinstance(m, protocol.TracksEnded) and m.reason == "moved"],
                                60, "a camera moved to the worker that joined")
        assert daemon.process.wait(120) == 0, daemon.log()[-3000:]
    finally:
        watcher.close()
        joiner.terminate()
        try:
            joiner.wait(30)
        finally:
            kill_leftovers([joiner])
    bus = [m for _, m in list(watcher.received)]
    opened = {(r.camera, r.worker, face.track_id) for r in bus if isinstance(r, protocol.Result)
              for face in r.faces if face.track_id is not None}
    ended = {(r.camera, r.worker, track): "left" for r in bus if isinstance(r, protocol.Result)
             for track in r.extra.get("ended_tracks", ())}
    ended.update({(m.camera, m.worker, track): m.reason for m in bus if isinstance(m, protocol.TracksEnded)
                  for track in m.ended_tracks})
    assert {s.camera for s in bus if isinstance(s, protocol.Status) and s.state == "eos"} == set(cameras)
    assert {worker for _, worker, _ in opened} == {"w1", "w2"}, "the cameras were not spread over the workers"
    assert opened <= set(ended), sorted(opened - set(ended))
    reasons = [reason for key, reason in ended.items() if key in opened]
    assert set(reasons) <= {"eos", "moved", "left"}, ended
    moved_away = {(m.camera, m.worker) for m in moved}
    assert {worker for _, worker in moved_away} == {"w1"} and all(
        set(m.ended_tracks) & {t for c, w, t in opened if (c, w) == (m.camera, "w1")} for m in moved), moved
    # each camera that left w1 went on, with new tracks, on w2
    assert {camera for camera, _ in moved_away} <= {c for c, w, _ in opened if w == "w2"}, moved_away
    print(f"{len(opened)} tracks ended: " + ", ".join(f"{r} {reasons.count(r)}" for r in sorted(set(reasons)))
          + f"; cameras moved to w2: {sorted(c for c, _ in moved_away)}")


def small_pipe() -> tuple[int, int]:
    """A pipe that holds one page, so a writer nobody reads blocks after a few lines."""
    read_fd, write_fd = os.pipe()
    fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 4096)
    return read_fd, write_fd


def big_result(seq: int) -> protocol.Result:
    """A result of 40 faces (about 9 kB), so the operating system's socket buffers hold few of them."""
    base = crafted_result("cam", seq)
    faces = tuple(dataclasses.replace(base.faces[0], box=(10 * i, 20, 100, 100)) for i in range(40))
    return dataclasses.replace(base, faces=faces)


def test_events_until_eos_whose_stdout_is_not_read_reports_the_missed_range_and_fails(tmp_path):
    """A publisher with the daemon's high-water mark (64) sends far more than the bus holds for a reader whose
    stdout nobody reads; once read again, the reader hears new results and end of stream."""
    endpoint = f"ipc://{tmp_path}/bus.sock"
    with zmq.Context() as ctx, ctx.socket(zmq.XPUB) as publisher:
        publisher.setsockopt(zmq.SNDHWM, 64)
        publisher.setsockopt(zmq.LINGER, 0)
        publisher.bind(endpoint)
        read_fd, write_fd = small_pipe()
        reader = subprocess.Popen([*EMOTIOND, "events", "--connect", endpoint, "--until-eos", "--timeout", "120"],
                                  cwd=REPO, env=child_env(tmp_path / "run"), stdout=write_fd, stderr=subprocess.PIPE,
                                  text=True)
        os.close(write_fd)
        lines: list[dict] = []
        try:
            wanted = {b"\x01" + protocol.RESULT_PREFIX, b"\x01" + protocol.STATUS_PREFIX}
            wait_for(lambda: publisher.poll(100) and wanted.discard(publisher.recv()) is None and not wanted, 60,
                     "the reader's subscriptions")
            for seq in range(1000):
                publisher.send_multipart(protocol.encode_result(big_result(seq)))
            stdout = os.fdopen(read_fd)
            threading.Thread(target=lambda: lines.extend(json.loads(line) for line in stdout), daemon=True).start()
            seq = 1000
            deadline = time.monotonic() + 60
            while not any(line["seq"] >= 1000 for line in list(lines)):  # it caught up: new results reach it
                assert time.monotonic() < deadline, "the reader never caught up"
                publisher.send_multipart(protocol.encode_result(big_result(seq)))
                seq += 1
                time.sleep(0.05)
            publisher.send_multipart(protocol.encode_status(
                protocol.Status("cam", "eos", "end of stream", time.time(), seq)))
            stderr = reader.communicate(timeout=60)[1]
        finally:
            kill_leftovers([reader])
    got = {line["seq"] for line in lines}
    missing = set(range(seq)) - got
    print(f"{len(got)} of {seq} results printed; stderr:\n{stderr}")
    assert missing and reader.returncode == 1
    reported = set()
    for line in stderr.splitlines():
        if "seq " in line and "missed" in line and "on 1 camera" not in line:
            first, last = (int(n) for n in line.split("seq ")[1].split(":")[0].split(".."))
            reported |= set(range(first, last + 1))
            assert line.startswith("emotiond events: camera cam: missed") and "fell behind" in line, line
    assert reported == missing


# ---------------------------------------------------------------- a live camera

@pytest.fixture
def still_video(tmp_path) -> Path:
    """One face that does not move: after a reconnect it is where it was, so only the grace period decides."""
    frame, _ = synthetic.render(synthetic.SceneSpec(faces=1, frames=1), 0)
    path = tmp_path / "still.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (frame.shape[1], frame.shape[0]))
    for _ in range(30):
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture
def camera_server(still_video) -> Iterator[StreamServer]:
    server = StreamServer(require_tool("ffmpeg", "ffmpeg", "serving a network stream"), still_video, free_port())
    server.start()
    yield server
    server.kill()


@pytest.mark.serial  # the reconnect must come within GRACE_SECONDS, the end after it
def test_a_live_cameras_tracks_end_when_it_stays_down_its_worker_dies_or_the_daemon_stops(
        start_daemon, watch, camera_server, mosquitto, mqtt_watch, default_model):
    broker = mosquitto()
    mqtt = mqtt_watch(broker.port, "emotiond/#")
    daemon = start_daemon("--source", f"door={camera_server.url}", workers=1, env={
        "EMOTIOND_CAPTURE__RECONNECT_INITIAL_SECONDS": "0.2", "EMOTIOND_CAPTURE__RECONNECT_MAX_SECONDS": "0.8",
        "EMOTIOND_TRACKING__DOWN_GRACE_SECONDS": str(GRACE_SECONDS), "EMOTIOND_MQTT__ENABLED": "true",
        "EMOTIOND_MQTT__URL": broker.url, "EMOTIOND_MQTT__DISCOVERY": "false"})
    bus = watch(daemon.results_endpoint, kinds=("result", "status", "tracks"))

    def tracks_since(wall: float) -> set[int]:
        """The tracks of the newest result, once ten results with faces came after ``wall`` (the face is steady)."""
        seen = [r for r in bus.results_after(wall) if r.faces]
        return {f.track_id for f in seen[-1].faces if f.track_id is not None} if len(seen) >= 10 else set()

    def ended(reason: str) -> list[protocol.TracksEnded]:
        return [m for _, m in list(bus.received) if isinstance(m, protocol.TracksEnded) and m.reason == reason]

    def mqtt_events(kind: str) -> set[int]:
        return {e["after"]["track_id"] for e in mqtt.events() if e["type"] == kind}

    def mqtt_ended_by(message: protocol.TracksEnded) -> set[int]:
        """Tracks the bridge ended because of this message (a track it gave up on as stale ends at its last frame)."""
        return {e["after"]["track_id"] for e in mqtt.events()
                if e["type"] == "end" and e["after"]["end_time"] == message.at}

    first = daemon.wait_for(lambda: tracks_since(0), 90, "a tracked face")

    # 1. down and back within the grace period: the track goes on
    killed = time.time()
    camera_server.kill()
    daemon.wait_for(lambda: [s for s in bus.statuses("down") if s.at >= killed], 20, "down status")
    camera_server.start()
    back = daemon.wait_for(lambda: [s for s in bus.statuses("up") if s.at >= killed], 20, "up status")[0].at
    reconnect = back - killed
    assert reconnect < GRACE_SECONDS
    daemon.wait_for(lambda: tracks_since(back), 20, "the face after the reconnect")
    assert first <= tracks_since(back) and not ended("down")

    # 2. down past the grace period: the track ends, on the bus and at the broker, and the face count goes to 0
    killed = time.time()
    camera_server.kill()
    down = daemon.wait_for(lambda: [s for s in bus.statuses("down") if s.at >= killed], 20, "down status")[0]
    message = daemon.wait_for(lambda: ended("down"), GRACE_SECONDS + 20, "tracks ended while down")[0]
    assert first <= set(message.ended_tracks) and message.at - down.at >= GRACE_SECONDS - 0.5
    print(f"back {reconnect:.1f} s after the first kill; second kill: down after {down.at - killed:.1f} s, "
          f"tracks ended {message.at - down.at:.1f} s after that")
    mqtt.wait(lambda: mqtt_ended_by(message) >= first, what="MQTT end for the track")
    mqtt.wait(lambda: mqtt.texts("emotiond/door/faces")[-1:] == ["0"], what="face count back to 0")

    # 3. back after that: a new track
    restarted = time.time()
    camera_server.start()
    second = daemon.wait_for(lambda: tracks_since(restarted), 30, "the face after coming back")
    assert not second & first

    # 4. the worker holding it dies: the camera's next worker ends its tracks
    os.kill(child_pids(daemon)["w1"], signal.SIGKILL)
    lost = daemon.wait_for(lambda: ended("worker_lost"), 90, "tracks of the killed worker ended")[0]
    assert second <= set(lost.ended_tracks)
    mqtt.wait(lambda: mqtt_ended_by(lost) >= second, what="MQTT end for the lost worker's track")
    respawned = time.time()
    third = daemon.wait_for(lambda: tracks_since(respawned), 90, "the face on the new worker")
    assert not third & (first | second)

    # 5. SIGTERM: the open track ends before the daemon exits, and the bridge says so
    assert daemon.stop(30) == 0
    stop = wait_for(lambda: [m for m in ended("stop") if third <= set(m.ended_tracks)], 10, "tracks ended at the stop")
    mqtt.wait(lambda: mqtt_ended_by(stop[0]) >= third, what="MQTT end for the last track")
    assert mqtt_events("end") == mqtt_events("new") >= first | second | third
    assert mqtt.texts("emotiond/door/faces")[-1] == "0"


# ---------------------------------------------------------------- the web console

def test_the_web_consoles_events_list_shows_the_tracks_a_stopped_camera_ended(tmp_path):
    from support.web import FakeBus, console, face_result, run, until_async, wait_seen, web_settings

    fake_bus = FakeBus(f"ipc://{tmp_path}/results.sock")

    async def scenario():
        async with console(web_settings(tmp_path), fake_bus.endpoint) as client:
            await wait_seen(client, fake_bus, "cam0")  # track 1 appears
            fake_bus.result(face_result("cam0", 1, "happy", track=7))
            fake_bus.raw(protocol.encode_tracks_ended(protocol.TracksEnded("cam0", (1, 7), "eos", time.time(), 1,
                                                                           "w1")))

            async def endings():
                reply = await client.get("/api/events?topic=event&camera=cam0")
                events = [e["payload"] for e in (await reply.json())["events"]]
                return [(e["track_id"], e["reason"]) for e in events if e["event"] == "disappeared"]

            assert sorted(await until_async(endings, 10, "the ended tracks in /api/events")) == [(1, "eos"),
                                                                                                 (7, "eos")]
    try:
        run(scenario)
    finally:
        fake_bus.close()


# ---------------------------------------------------------------- the logger

def test_the_logger_writes_ended_tracks_and_the_results_missing_at_end_of_stream(tmp_path):
    from emotiond.clients.log.logger import LoggerOptions, ResultLogger
    from emotiond.core.settings import Settings

    from support.clients import jsonl_records

    logger = ResultLogger("ipc:///nowhere", Settings(), LoggerOptions(out=tmp_path / "log"))
    logger.handle([crafted_result("cam", 0), crafted_result("cam", 1),
                   protocol.TracksEnded("cam", (0,), "eos", time.time(), 1, "w1"),
                   protocol.Status("cam", "eos", "end of stream", time.time(), 5)])
    logger.file.close()
    records = [(r.get("kind", "result"), r.get("first_seq", r.get("seq")), r.get("last_seq"))
               for r in jsonl_records(tmp_path / "log")]
    assert records == [("result", 0, None), ("result", 1, None), ("tracks", 1, None), ("gap", 2, 4),
                       ("status", None, None)]
