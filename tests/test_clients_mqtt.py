"""The MQTT bridge against a real Mosquitto broker: discovery, availability and its last will, Frigate-shaped
events, retained states, reconnection with bounded and counted drops, credentials and TLS."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from emotiond.clients.mqtt.discovery import Discovery
from emotiond.clients.mqtt.events import STALE_SECONDS, TrackEvents
from emotiond.clients.mqtt.outbox import BrokerOutbox, Outgoing
from emotiond.clients.mqtt.states import camera_state
from emotiond.clients.mqtt.topics import Topics
from emotiond.core.settings import Settings

from support.clients import CraftedPublisher
from support.daemon import EMOTIOND, REPO, child_env, child_pids, free_port, kill_leftovers, metric_value, wait_for
from support.mqtt import Watcher, face_that_leaves, ha_problems, retained_now, tracked_result

SIDE_KEYS = {"id", "camera", "track_id", "emotion", "score", "top_score", "scores", "box", "frame_time",
             "start_time", "end_time"}


def write_config(path: Path, mqtt: dict, sources: tuple[str, ...] = ()) -> Path:
    import tomli_w

    data: dict = {"mqtt": mqtt}
    if sources:
        data["sources"] = [{"name": name, "url": "demo"} for name in sources]
    path.write_text(tomli_w.dumps(data))
    return path


@pytest.fixture
def bridges(tmp_path: Path) -> Iterator:
    """``bridges(config, endpoint, env=None)`` starts ``emotiond mqtt``; any still running is killed afterwards."""
    started: list[BridgeProcess] = []

    def start(config: Path, endpoint: str, env: dict[str, str] | None = None) -> BridgeProcess:
        started.append(BridgeProcess(tmp_path, config, endpoint, env))
        return started[-1]

    yield start
    kill_leftovers(bridge.process for bridge in started)


class BridgeProcess:
    """``emotiond mqtt`` as a real process, with its stderr in a file and its own /metrics."""

    def __init__(self, tmp_path: Path, config: Path, endpoint: str, env: dict[str, str] | None = None):
        self.err = tmp_path / f"bridge-{time.monotonic_ns()}.err"
        self.metrics_port = free_port()
        environment = env or child_env(tmp_path / "run")
        with self.err.open("w") as fh:
            self.process = subprocess.Popen(
                [*EMOTIOND, "mqtt", "--config", str(config), "--connect", endpoint,
                 "--metrics-port", str(self.metrics_port)], cwd=REPO, env=environment, stdout=subprocess.DEVNULL,
                stderr=fh)

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def metric(self, name: str, **labels: str) -> float | None:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as response:
                text = response.read().decode()
        except (urllib.error.URLError, ConnectionError):
            return None
        return metric_value(text, name, **labels)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(20)
        return code


# ---------------------------------------------------------------- units: payload rules, queue, events, states

def test_discovery_payloads_have_what_home_assistant_requires():
    discovery = Discovery(Topics("emotiond"), "homeassistant", snapshots=True, version="1.0")
    configs = discovery.configs("lobby")
    components = sorted(topic.split("/")[1] for topic in configs)
    assert components == ["binary_sensor", "image", "sensor", "sensor"]
    for topic, config in configs.items():
        assert ha_problems(topic.split("/")[1], config) == [], topic
        assert config["availability_topic"] == "emotiond/available"
        assert {"name", "model", "sw_version"} <= config["device"].keys()
        assert discovery.camera_name(topic) == "lobby"
    assert len({c["unique_id"] for c in configs.values()}) == 4
    assert configs == Discovery(Topics("emotiond"), "homeassistant", True, "1.0").configs("lobby"), "stable"
    assert discovery.camera_name("homeassistant/sensor/other_node/lobby_faces/config") is None
    # the rules can fail: a config without its state topic, or with a misspelt key, is caught
    sensor = next(c for t, c in configs.items() if t.startswith("homeassistant/sensor/"))
    assert ha_problems("sensor", {k: v for k, v in sensor.items() if k != "state_topic"}) == [
        "missing required state_topic"]
    assert ha_problems("sensor", {**sensor, "stat_topic": "x"}) == ["unknown key stat_topic"]
    image = next(c for t, c in configs.items() if t.startswith("homeassistant/image/"))
    assert ha_problems("image", {**image, "url_topic": "x/y"}) == ["needs exactly one of ['image_topic', 'url_topic']"]


def test_outbox_bounds_the_queue_dropping_the_oldest_and_keeps_only_the_latest_retained_value():
    dropped: list[Outgoing] = []
    outbox = BrokerOutbox(3, on_drop=dropped.append)
    for index in range(5):
        outbox.send(Outgoing("e", str(index).encode(), "event"))
        outbox.retain(Outgoing("s", str(index).encode(), "state", retain=True))
    assert outbox.dropped == 2 and [m.payload for m in dropped] == [b"0", b"1"]
    sent = [outbox.pop() for _ in range(len(outbox))]
    assert [(m.topic, m.payload) for m in sent] == [("s", b"4"), ("e", b"2"), ("e", b"3"), ("e", b"4")]
    assert outbox.pop() is None
    assert not outbox.retain(Outgoing("s", b"4", "state", retain=True)), "an unchanged value is not sent again"
    outbox.resend_retained()
    assert outbox.pop().payload == b"4"


def test_broker_and_camera_passwords_are_read_one_way_each_with_its_own_errors(tmp_path, monkeypatch):
    """One reader (core/secrets.py) serves [mqtt] and every camera source: the first line of password_file, else
    password_env; each caller keeps its error type and names its own setting, never the password."""
    from emotiond.clients.mqtt.link import MqttError, read_password
    from emotiond.core.settings import MqttSettings, SourceSettings
    from emotiond.core.sources import SourceError, read_source_password

    def broker(**options) -> str | None:
        return read_password(MqttSettings(username="bridge", **options))

    def camera(**options) -> str | None:
        return read_source_password(SourceSettings(name="door", url="rtsp://viewer@cam.local/stream", **options))

    secret, empty, missing = tmp_path / "secret", tmp_path / "empty", tmp_path / "missing"
    secret.write_text("s3cret-horse\nsecond line\n")
    empty.write_text("\n")
    monkeypatch.setenv("PW_UNDER_TEST", "env-horse")
    assert broker(password_file=secret) == camera(password_file=secret) == "s3cret-horse"
    assert broker(password_env="PW_UNDER_TEST") == camera(password_env="PW_UNDER_TEST") == "env-horse"
    monkeypatch.delenv("PW_UNDER_TEST")
    assert broker(password_env="PW_UNDER_TEST") is None, "a broker may take no password"
    errors = []
    for options, broker_error, camera_error in [
        ({"password_file": empty}, f"mqtt.password_file {empty} is empty",
         f"camera door: password_file {empty} is empty"),
        ({"password_file": missing}, f"cannot read mqtt.password_file {missing}: No such file or directory",
         f"camera door: cannot read password_file {missing}: No such file or directory"),
        ({"password_env": "PW_UNDER_TEST"}, None,
         "camera door: environment variable PW_UNDER_TEST (password_env) is unset or empty"),
    ]:
        if broker_error is not None:
            with pytest.raises(MqttError) as caught:
                broker(**options)
            errors.append((str(caught.value), broker_error))
        with pytest.raises(SourceError) as refused:
            camera(**options)
        assert refused.value.reason == "unreadable"
        errors.append((str(refused.value), camera_error))
    assert [said for said, _ in errors] == [expected for _, expected in errors]
    assert not any("horse" in said for said, _ in errors)


def test_events_are_new_then_update_on_change_or_interval_then_end():
    events = TrackEvents(update_interval=2.0)

    def feed(seq: int, now: float, tracks: dict[int, str], ended: tuple[int, ...] = ()) -> list[tuple]:
        return [(e["type"], e["after"]["track_id"], e["after"]["emotion"])
                for e in events.feed(tracked_result("door", seq, tracks, ended), now)]

    assert feed(0, 0.0, {7: "happy"}) == [("new", 7, "happy")]
    assert feed(1, 1.0, {7: "happy"}) == []  # nothing changed, and the interval has not passed
    assert feed(2, 1.5, {7: "sad"}) == [("update", 7, "sad")]  # a change goes out at once
    assert feed(3, 2.5, {7: "sad"}) == []
    assert feed(4, 3.6, {7: "sad"}) == [("update", 7, "sad")]  # the interval since the last message passed
    before_end = events.tracks[("door", 7)].published
    ended = list(events.feed(tracked_result("door", 5, {}, ended=(7,)), 3.7))
    assert [(e["type"], e["after"]["track_id"]) for e in ended] == [("end", 7)]
    assert ended[0]["before"] == before_end and ended[0]["before"]["end_time"] is None
    assert ended[0]["after"]["end_time"] is not None and set(ended[0]["after"]) == SIDE_KEYS
    # a track whose end never comes (its worker restarted) ends once unseen for STALE_SECONDS
    assert feed(6, 10.0, {9: "angry"}) == [("new", 9, "angry")]
    assert list(events.expire(10.0 + STALE_SECONDS / 2)) == []
    assert [e["type"] for e in events.expire(10.0 + STALE_SECONDS + 0.1)] == ["end"]
    assert events.tracks == {}


def test_camera_state_counts_faces_and_picks_the_dominant_emotion():
    labels = ("angry", "happy", "sad")
    assert camera_state([], labels).dominant == "none"
    state = camera_state([("happy", 0.9), ("sad", 0.6), ("sad", 0.5)], labels)
    assert (state.faces, state.dominant, state.counts) == (3, "sad", {"angry": 0, "happy": 1, "sad": 2})
    assert camera_state([("happy", 0.9), ("sad", 0.6)], labels).dominant == "happy"  # tie: higher confidence


def test_defaults_reach_only_a_loopback_broker_and_bad_settings_are_one_line_errors(tmp_path):
    assert Settings().mqtt.url == "mqtt://127.0.0.1:1883" and not Settings().mqtt.enabled
    env = child_env(tmp_path / "run")
    cases = {
        "--url=http://broker": "must start with mqtt:// or mqtts://",
        "--url=mqtt://emotiond:hunter2secret@127.0.0.1": "credentials do not go in the URL",
        "--url=mqtt://127.0.0.1:1883/x": "nothing after the port",
    }
    for flag, expected in cases.items():
        done = subprocess.run([*EMOTIOND, "mqtt", flag], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 2, done.stderr
        assert expected in done.stderr and "Traceback" not in done.stderr
        assert "hunter2secret" not in done.stderr
    config = write_config(tmp_path / "nopass.toml", {"username": "u", "password_file": str(tmp_path / "missing")})
    done = subprocess.run([*EMOTIOND, "mqtt", "--config", str(config)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "cannot read mqtt.password_file" in done.stderr, done.stderr


# ---------------------------------------------------------------- a bridge process and a real broker

def test_last_will_announces_a_bridge_killed_with_sigkill(tmp_path, mosquitto, mqtt_watch, bridges):
    broker = mosquitto()
    watcher = mqtt_watch(broker.port, "emotiond/available")
    config = write_config(tmp_path / "bridge.toml", {"url": broker.url, "discovery": False})
    bridge = bridges(config, f"ipc://{tmp_path}/bus.sock")
    watcher.wait(lambda: watcher.texts("emotiond/available") == ["online"], what="online")
    bridge.process.kill()
    bridge.process.wait(10)
    watcher.wait(lambda: watcher.texts("emotiond/available") == ["online", "offline"], what="the last will")
    late = Watcher(broker.port, ("emotiond/available",))  # the will is retained: a newcomer learns it too
    try:
        late.wait(lambda: late.on("emotiond/available"), what="retained availability")
        assert [(m.text, m.retain) for m in late.on("emotiond/available")] == [("offline", True)]
    finally:
        late.close()


def test_reconnects_after_a_broker_restart_losing_only_the_counted_drops(tmp_path, mosquitto, mqtt_watch, bridges):
    broker = mosquitto(persistence=True)
    # a persistent session: the broker keeps (and saves) what arrives for this subscriber while it is away
    watcher = mqtt_watch(broker.port, "emotiond/events", "emotiond/available", session="mqtt-test-subscriber")
    endpoint = f"ipc://{tmp_path}/bus.sock"
    publisher = CraftedPublisher(endpoint)
    config = write_config(tmp_path / "bridge.toml", {"url": broker.url, "discovery": False, "queue_size": 3,
                                                     "update_interval": 3600.0, "reconnect_max_seconds": 1.0})
    bridge = bridges(config, endpoint)
    try:
        publisher.wait_subscriber()
        watcher.wait(lambda: "online" in watcher.texts("emotiond/available"), what="online")
        tracks: dict[int, str] = {}

        def new_tracks() -> list[int]:
            return [e["after"]["track_id"] for e in watcher.events() if e["type"] == "new"]

        for track in range(1, 6):
            tracks[track] = "happy"
            publisher.publish(tracked_result("door", track, tracks))
        watcher.wait(lambda: set(new_tracks()) == {1, 2, 3, 4, 5}, what="the first five events")

        broker.stop()
        wait_for(lambda: bridge.metric("emotiond_mqtt_connected") == 0, 20, "the bridge to notice")
        for track in range(6, 16):  # ten new faces while the broker is away; the queue holds three
            tracks[track] = "happy"
            publisher.publish(tracked_result("door", track, tracks))
        wait_for(lambda: bridge.metric("emotiond_mqtt_dropped_total") == 7, 20, "seven counted drops")
        broker.start()

        watcher.wait(lambda: set(new_tracks()) >= {13, 14, 15}, what="the queued events after the restart")
        assert wait_for(lambda: bridge.metric("emotiond_mqtt_connected") == 1, 20, "connected again")
        time.sleep(0.5)  # anything else in flight would arrive now
        assert sorted(set(new_tracks())) == [1, 2, 3, 4, 5, 13, 14, 15], "lost only the oldest, counted ones"
        assert bridge.metric("emotiond_mqtt_dropped_total") == 7
        assert bridge.metric("emotiond_mqtt_published_total", topic_kind="event") == 8
        assert watcher.texts("emotiond/available").count("online") >= 2, "online again after the restart"
        assert bridge.stop() == 0, bridge.stderr()[-2000:]
    finally:
        publisher.close()


def test_refused_credentials_are_one_clear_line_and_the_password_is_never_logged(tmp_path, mosquitto,
                                                                                mqtt_watch, bridges):
    passwords = tmp_path / "mosquitto.passwd"
    passwords.touch()
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "emotiond", "right-horse-battery"], check=True,
                   timeout=20)
    broker = mosquitto(f"password_file {passwords}\nallow_anonymous false")
    wrong = tmp_path / "wrong.secret"
    wrong.write_text("wrong-horse-battery\n")
    endpoint = f"ipc://{tmp_path}/bus.sock"
    config = write_config(tmp_path / "wrong.toml", {"url": broker.url, "username": "emotiond",
                                                    "password_file": str(wrong)})
    refused = bridges(config, endpoint)
    assert refused.process.wait(30) == 2, refused.stderr()[-2000:]
    last = refused.stderr().strip().splitlines()[-1]
    assert last.startswith(f"emotiond mqtt: broker {broker.url} refused the connection: Not authorized"), last
    assert "wrong-horse-battery" not in refused.stderr() and "Traceback" not in refused.stderr()

    # the same bridge with the right password, from the environment this time, is let in
    watcher = mqtt_watch(broker.port, "emotiond/available", auth=("emotiond", "right-horse-battery"))
    config = write_config(tmp_path / "right.toml", {"url": broker.url, "username": "emotiond",
                                                    "discovery": False})
    env = child_env(tmp_path / "run", EMOTIOND_MQTT_PASSWORD="right-horse-battery")
    accepted = bridges(config, endpoint, env)
    watcher.wait(lambda: "online" in watcher.texts("emotiond/available"), what="online with the right password")
    assert accepted.stop() == 0
    assert "right-horse-battery" not in accepted.stderr()


def test_tls_needs_the_brokers_ca(tmp_path, mosquitto, mqtt_watch, bridges):
    certs = make_certificates(tmp_path / "certs")
    tls_port = free_port()
    broker = mosquitto(f"listener {tls_port} 127.0.0.1\ncafile {certs['ca']}\ncertfile {certs['cert']}\n"
                       f"keyfile {certs['key']}")
    endpoint = f"ipc://{tmp_path}/bus.sock"
    untrusted = bridges(write_config(tmp_path / "system-ca.toml", {
        "url": f"mqtts://127.0.0.1:{tls_port}"}), endpoint)
    assert untrusted.process.wait(30) == 2, untrusted.stderr()[-2000:]
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr().strip().splitlines()[-1]

    watcher = mqtt_watch(broker.port, "emotiond/available")  # the plain listener of the same broker
    trusted = bridges(write_config(tmp_path / "ca.toml", {
        "url": f"mqtts://127.0.0.1:{tls_port}", "tls_ca_file": str(certs["ca"]), "discovery": False}), endpoint)
    watcher.wait(lambda: "online" in watcher.texts("emotiond/available"), what="online over TLS")
    assert trusted.stop() == 0


def make_certificates(folder: Path) -> dict[str, Path]:
    """A throw-away CA and a certificate for 127.0.0.1 signed by it (openssl)."""
    folder.mkdir()
    ca, ca_key, cert, key = (folder / n for n in ("ca.pem", "ca.key", "server.pem", "server.key"))
    run = {"check": True, "capture_output": True, "timeout": 60}
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
                    str(ca), "-days", "2", "-subj", "/CN=emotiond test CA", "-addext",
                    "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"], **run)
    csr = folder / "server.csr"
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
                    "-subj", "/CN=127.0.0.1"], **run)
    extensions = folder / "server.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                          "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
                    "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(extensions)], **run)
    return {"ca": ca, "cert": cert, "key": key}


def test_a_camera_removed_from_the_config_loses_its_entities(tmp_path, mosquitto, mqtt_watch, bridges):
    broker = mosquitto()
    endpoint = f"ipc://{tmp_path}/bus.sock"

    def retained_configs() -> dict[str, bytes]:
        return retained_now(broker.port, "homeassistant/#")

    first = bridges(write_config(tmp_path / "two.toml", {"url": broker.url, "snapshots": True},
                                                 sources=("door", "lobby")), endpoint)
    watcher = mqtt_watch(broker.port, "homeassistant/#")
    watcher.wait(lambda: len({m.topic for m in watcher.messages}) == 8, what="four entities per camera")
    assert first.stop() == 0
    assert len(retained_configs()) == 8

    second = bridges(write_config(tmp_path / "one.toml", {"url": broker.url},
                                                  sources=("door",)), endpoint)
    watcher.wait(lambda: sum(1 for m in watcher.messages if m.payload == b"") == 5, what="five emptied configs")
    assert second.stop() == 0
    kept = retained_configs()
    assert sorted(kept) == ["homeassistant/binary_sensor/emotiond/door_face/config",
                            "homeassistant/sensor/emotiond/door_emotion/config",
                            "homeassistant/sensor/emotiond/door_faces/config"]
    assert all(json.loads(payload)["device"]["identifiers"] == ["emotiond_door"] for payload in kept.values())


# ---------------------------------------------------------------- the daemon, with the bridge as a role of `run`

def daemon_config(tmp_path: Path, broker_url: str, **mqtt: object) -> Path:
    return write_config(tmp_path / "daemon.toml", {"enabled": True, "url": broker_url, **mqtt})


def test_emotiond_run_bridges_a_face_that_leaves(start_daemon, default_model, tmp_path, mosquitto, mqtt_watch):
    broker = mosquitto()
    watcher = mqtt_watch(broker.port, "#")
    video = face_that_leaves(tmp_path / "leaves.mp4", visible=45, absent=45)
    config = daemon_config(tmp_path, broker.url, update_interval=0.5, stats_interval=1.0, snapshots=True)
    daemon = start_daemon("--config", str(config), "--source", f"lobby={video}", "--realtime", "--loop", workers=1)

    def a_whole_track() -> list[dict]:
        """The events of the first track seen from start to end with an update between (on a loaded machine a
        realtime source drops frames, and the tracker may lose a face for a moment and start a new track)."""
        by_track: dict[str, list[dict]] = {}
        for event in watcher.events():
            by_track.setdefault(event["after"]["id"], []).append(event)
        for events in by_track.values():
            kinds = [e["type"] for e in events]
            if kinds[0] == "new" and kinds[-1] == "end" and "update" in kinds:
                return events
        return []

    sequence = wait_for(a_whole_track, 90, "a track's new, update ... end events")
    kinds = [e["type"] for e in sequence]
    assert set(kinds[1:-1]) == {"update"}, kinds
    for event in sequence:
        assert set(event) == {"type", "before", "after"}
        assert set(event["before"]) == set(event["after"]) == SIDE_KEYS
        assert event["after"]["camera"] == "lobby"
        assert (event["after"]["end_time"] is not None) == (event["type"] == "end")
    assert sequence[0]["before"] == sequence[0]["after"]
    for previous, event in itertools.pairwise(sequence):
        assert event["before"] == previous["after"], "before is what was published last"
    emotion = sequence[0]["after"]["emotion"]
    end = sequence[-1]["after"]
    assert end["end_time"] >= end["start_time"] and end["top_score"] >= sequence[0]["after"]["score"]

    # availability and discovery
    assert watcher.texts("emotiond/available")[0] == "online"
    configs = {m.topic: m.json() for m in watcher.messages if m.topic.startswith("homeassistant/") and m.payload}
    assert len(configs) == 4
    for topic, payload in configs.items():
        assert ha_problems(topic.split("/")[1], payload) == [], topic
    # states: the face came and went; its emotion counted while it was there
    faces = watcher.texts("emotiond/lobby/faces")
    assert faces[0] == "0" and "1" in faces and "0" in faces[faces.index("1"):], faces
    assert watcher.texts("emotiond/lobby/emotion")[0] == "none"
    assert emotion in watcher.texts("emotiond/lobby/emotion")
    assert "1" in watcher.texts(f"emotiond/lobby/{emotion}")
    snapshot = watcher.last("emotiond/lobby/snapshot")
    assert snapshot is not None and snapshot.payload[:2] == b"\xff\xd8", "a JPEG"
    stats = wait_for(lambda: watcher.last("emotiond/stats"), 10, "stats").json()
    processed = stats["metrics"]["emotiond_frames_processed_total"]["camera=lobby"]
    assert processed > 0

    text = daemon.metrics_text()
    assert metric_value(text, "emotiond_mqtt_connected") == 1
    assert metric_value(text, "emotiond_mqtt_published_total", topic_kind="event") >= len(sequence)
    assert metric_value(text, "emotiond_mqtt_dropped_total") == 0
    assert metric_value(text, "emotiond_frames_processed_total", camera="lobby") >= processed

    assert daemon.stop() == 0, daemon.log()[-3000:]
    assert watcher.texts("emotiond/available")[-1] == "offline", "a clean stop says goodbye"
    late = Watcher(broker.port, ("emotiond/#",))
    try:
        late.wait(lambda: late.last("emotiond/available"), what="retained availability")
        retained = {m.topic: m.text for m in late.messages if m.retain and m.topic != "emotiond/lobby/snapshot"}
        assert retained["emotiond/available"] == "offline"
        assert {"emotiond/lobby/faces", "emotiond/lobby/emotion", f"emotiond/lobby/{emotion}"} <= retained.keys()
    finally:
        late.close()


def test_under_run_a_killed_bridge_leaves_its_will_and_a_restarted_broker_is_rejoined(
        start_daemon, default_model, tmp_path, mosquitto, mqtt_watch):
    broker = mosquitto()
    watcher = mqtt_watch(broker.port, "emotiond/available", "emotiond/events")
    video = face_that_leaves(tmp_path / "leaves.mp4", visible=30, absent=15)
    config = daemon_config(tmp_path, broker.url, reconnect_max_seconds=1.0, discovery=False)
    daemon = start_daemon("--config", str(config), "--source", f"lobby={video}", "--realtime", "--loop", workers=1)
    watcher.wait(lambda: watcher.texts("emotiond/available") == ["online"], 90, "online")

    pid = child_pids(daemon)["mqtt"]
    killed_at = time.time()
    subprocess.run(["kill", "-KILL", str(pid)], check=True)
    watcher.wait(lambda: watcher.texts("emotiond/available")[:2] == ["online", "offline"], 30, "the last will")
    watcher.wait(lambda: watcher.texts("emotiond/available")[-1] == "online", 30, "the restarted bridge")
    assert child_pids(daemon)["mqtt"] != pid

    def from_the_restarted_bridge() -> list[dict]:
        """Events that came after the restarted bridge's ``online`` (everything the killed bridge sent reached the
        broker before its will) and are about frames captured after the kill: the killed bridge sent none."""
        messages = list(watcher.messages)
        availability = [index for index, m in enumerate(messages) if m.topic == "emotiond/available"]
        assert [messages[i].text for i in availability[:3]] == ["online", "offline", "online"]
        return [event for m in messages[availability[2] + 1:] if m.topic == "emotiond/events"
                and (event := m.json())["after"]["frame_time"] > killed_at]

    watcher.wait(from_the_restarted_bridge, 60, "events from the restarted bridge")

    onlines = watcher.texts("emotiond/available").count("online")
    broker.stop()  # without persistence: the restarted broker has forgotten every retained message
    restarted_at = time.time()
    broker.start()
    watcher.wait(lambda: [e for e in watcher.events() if e["after"]["frame_time"] > restarted_at + 0.5], 60,
                 "events of frames captured after the broker restarted")
    watcher.wait(lambda: watcher.texts("emotiond/available").count("online") > onlines, 10,
                 "the bridge to publish online again on the new broker")
    assert daemon.stop() == 0, daemon.log()[-3000:]
