"""Aggregates-only mode: nothing per face leaves a worker, only windows of counts and shares, small groups suppressed.

The windows alone first (alignment, suppression, partial windows, the wire format and its checks), then a real
daemon with ``publish = "aggregates"`` on two cameras, one with four faces and one with one: a subscriber to every
topic (frames included, so a worker would encode them) sees no result, frame, track id or box, and ``emotiond
events`` prints the windows; the one-face camera's windows are suppressed and the four-face camera's are not.
"""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from emotiond.capture import synthetic
from emotiond.clients.records import json_line
from emotiond.core import protocol
from emotiond.workers.aggregates import GRACE_SECONDS, WindowAggregator

from support.clients import CraftedPublisher
from support.daemon import EMOTIOND, REPO, BusWatcher, child_env, kill_leftovers, wait_for
from support.history import table_rows
from support.mqtt import retained_now


def face(track: int, emotion: str = "happy") -> protocol.Face:
    return protocol.Face((10, 10, 40, 40), emotion, 0.9, {emotion: 0.9, "neutral": 0.1}, track_id=track)


def test_windows_count_distinct_faces_and_suppress_small_groups():
    windows = WindowAggregator(window_seconds=10.0, min_group=3, worker="w1")
    assert windows.add("shop", 100.5, [face(1), face(2, "sad")]) == []
    assert windows.add("shop", 105.0, [face(1), face(3, "neutral")]) == []
    assert windows.add("door", 101.0, [face(7)]) == []
    closed = windows.add("shop", 110.2, [face(4)])  # the next window: the first one closes
    assert len(closed) == 1
    first = closed[0]
    assert (first.start, first.end, first.frames, first.faces, first.suppressed, first.partial) == (
        100.0, 110.0, 2, 3, False, False)
    assert first.shares == {"happy": 0.5, "neutral": 0.25, "sad": 0.25}
    door = windows.due(111.0 + GRACE_SECONDS)  # the door went quiet; shop's window 110..120 is still open
    assert [(a.camera, a.suppressed, a.faces, a.shares) for a in door] == [("door", True, None, {})]
    ended = windows.end("shop", 113.0)
    assert [(a.start, a.end, a.partial, a.suppressed) for a in ended] == [(110.0, 113.0, True, True)]
    assert windows.end("shop", 114.0) == []
    late = windows.add("shop", 112.0, [face(5)])  # captured before the published end: counted in the next window
    assert late == [] and windows.end_all(125.0)[0].start == 110.0


def test_aggregate_wire_format_and_its_checks():
    kept = protocol.Aggregate("shop", 100.0, 160.0, 60.0, 1800, False, 7, {"happy": 0.6, "neutral": 0.4}, False, "w1")
    decoded = protocol.decode(protocol.encode_aggregate(kept))
    assert decoded == kept
    hidden = protocol.Aggregate("shop", 100.0, 160.0, 60.0, 1800, True, None, {}, False, "w1")
    wire = hidden.to_dict()
    assert wire["suppressed"] is True and "faces" not in wire and "shares" not in wire
    assert protocol.decode(protocol.encode_aggregate(hidden)) == hidden
    assert json.loads(json_line(hidden))["kind"] == "aggregate"
    topic, _, payload = protocol.encode_aggregate(kept)
    for change, reason in [({"faces": -1}, "out of range"), ({"shares": {"happy": 1.5}}, "from 0 to 1"),
                           ({"suppressed": True}, "carries no face count"), ({"end": 50.0}, "before its start"),
                           ({"suppressed": "no"}, "suppressed has type")]:
        header = {"kind": "aggregate", **kept.to_dict(), **change}
        with pytest.raises(protocol.ProtocolError, match=reason):
            protocol.decode([topic, protocol._pack(header), payload])


@pytest.mark.timeout(240)
def test_daemon_in_aggregates_mode_publishes_nothing_per_face(tmp_path, start_daemon, events, default_model):
    crowd = synthetic.write_video(tmp_path / "crowd.mp4", synthetic.SceneSpec(faces=4, frames=60))
    single = synthetic.write_video(tmp_path / "single.mp4", synthetic.SceneSpec(faces=1, frames=60))
    daemon = start_daemon(f"--source=crowd={crowd}", f"--source=single={single}", workers=1, env={
        "EMOTIOND_PRIVACY__PUBLISH": "aggregates", "EMOTIOND_PRIVACY__WINDOW_SECONDS": "1",
        "EMOTIOND_PRIVACY__MIN_GROUP": "3"})
    watcher = BusWatcher(daemon.results_endpoint, kinds=("*",))  # every topic, frames too: a viewer is watching
    printed = events(daemon, "--until-eos", "--timeout", "150")
    logged = tmp_path / "logs"
    logger = subprocess.Popen([*EMOTIOND, "log", "--out", str(logged)], cwd=REPO, env=daemon.env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert daemon.process.wait(150) == 0, daemon.log()[-3000:]
        lines = printed.wait(60)
        wait_for(lambda: len(watcher.statuses("eos")) == 2, 10, "both cameras' end of stream on the bus")
        logger.send_signal(signal.SIGTERM)
        assert logger.wait(30) == 0
    finally:
        watcher.close()
        kill_leftovers([logger])
    bus = [message for _, message in list(watcher.received)]
    assert watcher.invalid == 0, watcher.bad_messages
    per_face = [m for m in bus if isinstance(m, protocol.Result | protocol.Frame | protocol.TracksEnded)]
    assert per_face == [], f"{len(per_face)} per-face messages on the bus, first {per_face[0]!r}"[:300]
    aggregates = [m for m in bus if isinstance(m, protocol.Aggregate)]
    assert {a.camera for a in aggregates} == {"crowd", "single"}, aggregates
    assert sum(a.frames for a in aggregates if a.camera == "crowd") >= 60, aggregates  # a restarted worker recounts
    assert all(a.suppressed and a.faces is None and not a.shares for a in aggregates if a.camera == "single"), [
        a for a in aggregates if a.camera == "single"]
    shown = [a for a in aggregates if a.camera == "crowd" and not a.suppressed]
    assert shown, f"no window of the four-face camera was shown: {aggregates}"
    assert all(a.faces >= 3 and abs(sum(a.shares.values()) - 1) < 0.01 for a in shown), shown
    for message in bus:  # nothing per face anywhere in what was published
        text = json.dumps(message.to_dict())
        assert not any(key in text for key in ('"box"', '"track_id"', '"ended_tracks"', '"landmarks"')), text
    assert [line for line in lines if line.get("kind") != "aggregate"] == []
    assert {(line["camera"], line["start"], line["suppressed"]) for line in lines} == {
        (a.camera, a.start, a.suppressed) for a in aggregates}
    assert "privacy: aggregates only, every 1 s, windows under 3 faces suppressed" in daemon.log()
    log_lines = [json.loads(line) for path in logged.glob("*.jsonl") for line in path.read_text().splitlines()]
    assert {line.get("kind") for line in log_lines} == {"aggregate", "status"}, "the logger wrote the windows only"
    assert sum(line.get("kind") == "aggregate" for line in log_lines) == len(aggregates)
    history = f"sqlite:///{daemon.runtime_dir / 'state' / 'emotiond' / 'history.sqlite'}"
    assert table_rows(history, "tracks") == [] and table_rows(history, "samples") == [], "the history kept no face"
    assert "Traceback" not in daemon.log() and " ERROR " not in daemon.log(), daemon.log()[-3000:]


@pytest.mark.timeout(120)
def test_the_mqtt_bridge_retains_each_cameras_latest_window(tmp_path, mosquitto, mqtt_watch):
    broker = mosquitto()
    watcher = mqtt_watch(broker.port, "emotiond/#")
    config = tmp_path / "bridge.toml"
    config.write_text(f'[mqtt]\nurl = "{broker.url}"\ndiscovery = false\n')
    endpoint = f"ipc://{tmp_path}/bus.sock"
    publisher = CraftedPublisher(endpoint)
    bridge = subprocess.Popen([*EMOTIOND, "mqtt", "--config", str(config), "--connect", endpoint, "--metrics-port",
                               "0"], cwd=REPO, env=child_env(tmp_path / "run"), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        publisher.wait_subscriber(protocol.AGGREGATE_PREFIX, timeout=60)
        windows = [protocol.Aggregate("shop", 60.0 * i, 60.0 * (i + 1), 60.0, 1800, i == 1, None if i == 1 else 6,
                                      {} if i == 1 else {"happy": 0.5, "neutral": 0.5}, False, "w1")
                   for i in range(2)]
        for count, window in enumerate(windows, 1):  # one at a time: only a topic's latest retained value is queued
            publisher.sock.send_multipart(protocol.encode_aggregate(window))
            watcher.wait(lambda n=count: len(watcher.on("emotiond/shop/aggregate")) == n, what=f"window {count}")
        sent = [message.json() for message in watcher.on("emotiond/shop/aggregate")]
        assert sent == [window.to_dict() for window in windows]
        retained = retained_now(broker.port, "emotiond/shop/aggregate")
        assert json.loads(retained["emotiond/shop/aggregate"]) == windows[-1].to_dict(), "a newcomer gets the latest"
        assert watcher.texts("emotiond/shop/faces") == ["0"], "no face state: there are no faces"
        assert not watcher.on("emotiond/events")
    finally:
        kill_leftovers([bridge])
        publisher.close()
