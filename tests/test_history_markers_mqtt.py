"""The MQTT marker command: ``PREFIX/marker/set`` on a real Mosquitto sets a history marker through the bridge
(``emotiond mqtt``, a real process) on both engines, answers on ``PREFIX/marker/result``, refuses bad payloads in
one line, and limits the rate."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import tomli_w
from paho.mqtt.enums import CallbackAPIVersion

from emotiond.clients.history import queries
from emotiond.clients.history.store import HistoryReader
from emotiond.clients.mqtt.markers import BURST

from support.daemon import EMOTIOND, REPO, child_env, kill_leftovers

RESULT = "emotiond/marker/result"


@pytest.fixture
def bridge(tmp_path: Path):
    started: list[subprocess.Popen] = []

    def start(broker_url: str, history: dict) -> subprocess.Popen:
        config = tmp_path / "bridge.toml"
        config.write_text(tomli_w.dumps({"mqtt": {"url": broker_url, "discovery": False}, "history": history}))
        with (tmp_path / "bridge.err").open("w") as err:
            started.append(subprocess.Popen([*EMOTIOND, "mqtt", "--config", str(config), "--connect",
                                             f"ipc://{tmp_path}/bus.sock"], cwd=REPO, env=child_env(tmp_path / "run"),
                                            stdout=subprocess.DEVNULL, stderr=err))
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    kill_leftovers(started, 20)


def publish(port: int, *payloads: bytes) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port, keepalive=10)
    client.loop_start()
    try:
        for payload in payloads:
            client.publish("emotiond/marker/set", payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_marker_commands_set_markers_and_bad_ones_are_answered(history_url, mosquitto, mqtt_watch, bridge):
    broker = mosquitto()
    watcher = mqtt_watch(broker.port, "emotiond/available", RESULT)
    bridge(broker.url, {"url": history_url})
    watcher.wait(lambda: watcher.texts("emotiond/available") == ["online"], what="the bridge online")
    before = time.time()
    publish(broker.port, b"new sign", json.dumps({"label": "doors open", "camera": "lobby"}).encode(),
            b'{"label": "x", "colour": "red"}', b"", "\u00e9t\u00e9 menu".encode())
    answers = watcher.wait(lambda: (found := [m.json() for m in watcher.on(RESULT)]) and len(found) == 5 and found,
                           what="five answers")
    assert [answer["ok"] for answer in answers] == [True, True, False, False, True]
    assert "label" in answers[2]["error"] and "empty" in answers[3]["error"]
    assert answers[1]["marker"]["camera"] == "lobby" and answers[1]["marker"]["source"] == "mqtt"
    with HistoryReader(history_url) as reader:
        kept = queries.markers(reader, None, before - 1, time.time() + 1)["markers"]
    assert [(m["label"], m["camera"], m["source"]) for m in kept] == [
        ("new sign", None, "mqtt"), ("doors open", "lobby", "mqtt"), ("\u00e9t\u00e9 menu", None, "mqtt")]
    assert [m["id"] for m in kept] == [answers[0]["marker"]["id"], answers[1]["marker"]["id"],
                                       answers[4]["marker"]["id"]]


def test_a_flood_of_marker_commands_is_limited(tmp_path, mosquitto, mqtt_watch, bridge):
    broker = mosquitto()
    watcher = mqtt_watch(broker.port, "emotiond/available", RESULT)
    url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    bridge(broker.url, {"url": url})
    watcher.wait(lambda: watcher.texts("emotiond/available") == ["online"], what="the bridge online")
    publish(broker.port, *(f"marker {index}".encode() for index in range(3 * BURST)))
    answers = watcher.wait(lambda: (found := [m.json() for m in watcher.on(RESULT)]) and len(found) == 3 * BURST
                           and found, what="every answer")
    accepted = [answer for answer in answers if answer["ok"]]
    assert BURST <= len(accepted) < 2 * BURST
    assert all("a second" in answer["error"] for answer in answers if not answer["ok"])
    with HistoryReader(url) as reader:
        assert len(queries.markers(reader, None, 0, time.time() + 1)["markers"]) == len(accepted)
