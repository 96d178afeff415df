"""config/deploy/compose.yaml brought up with podman-compose: the daemon, two workers, the web console, the MQTT
bridge and Mosquitto as separate containers, tcp with CURVE between them; the demo's results show in the web
service's /api/events, from both workers, and reach the broker through the bridge."""

from __future__ import annotations

import json
import secrets
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest

from emotiond.benchmarks.harness import free_port

from support.daemon import REPO, wait_for
from support.podman import container_keys, podman, podman_env, require_image, unique_name

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(900)]

COMPOSE = REPO / "config" / "deploy" / "compose.yaml"
EMOTIOND_SERVICES = ("daemon", "worker1", "worker2", "web", "mqtt")


def compose(project: str, env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["podman-compose", "-p", project, "-f", str(COMPOSE), *args], capture_output=True,
                          text=True, timeout=timeout, env={**podman_env(), **env})


def container(project: str, service: str) -> str:
    names = podman("ps", "-a", "--format", "{{.Names}}", "--filter", f"label=io.podman.compose.project={project}",
                   "--filter", f"label=com.docker.compose.service={service}").stdout.split()
    assert len(names) == 1, names
    return names[0]


UNVERIFIED = ssl._create_unverified_context()  # the console's certificate is self-signed


def api_events(port: int, token: str) -> list[dict]:
    request = urllib.request.Request(f"https://127.0.0.1:{port}/api/events?topic=result&limit=200",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10, context=UNVERIFIED) as response:
            return json.load(response)["events"]
    except OSError:
        return []  # not listening yet


def test_compose_runs_every_role_in_its_own_container(tmp_path):
    require_image()
    require_image("localhost/emotiond-mosquitto:latest")
    project = unique_name("emotiond-compose-test")
    token = secrets.token_hex(16)
    port = free_port()
    env = {"EMOTIOND_KEYS": str(container_keys(tmp_path / "keys", ["daemon", "worker", "web", "mqtt"])),
           "EMOTIOND_WEB_TOKEN": token, "EMOTIOND_WEB_PORT": str(port)}
    up = compose(project, env, "up", "-d")
    try:
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        running = {s: container(project, s) for s in (*EMOTIOND_SERVICES, "mosquitto")}

        def from_both_workers() -> list[dict] | None:
            events = api_events(port, token)
            return events if len({e["payload"]["worker"] for e in events}) >= 2 else None

        events = wait_for(from_both_workers, 300, what="/api/events to show results from both worker containers",
                          interval=2)
        assert {e["payload"]["camera"] for e in events} == {"cam0", "cam1"}  # one camera per worker (tracking)
        assert any(e["payload"]["faces"] for e in events)
        assert _unauthorised(port), "/api/events answered without the token"
        broker = next(iter(json.loads(podman("inspect", running["mosquitto"]).stdout)[0]["NetworkSettings"]
                           ["Networks"].values()))["IPAddress"]
        topics = mqtt_topics(broker, 5)
        assert {"emotiond/cam0/faces", "emotiond/cam1/faces"} & set(topics) or "emotiond/events" in topics, topics
        for service in EMOTIOND_SERVICES:  # each role is its own container, and none restarted
            state = json.loads(podman("inspect", running[service]).stdout)[0]["State"]
            assert state["Running"] and state.get("RestartCount", 0) == 0, (service, state)
    finally:
        for service in EMOTIOND_SERVICES:  # shown only when the test fails
            print(service, podman("logs", "--tail", "20", f"{project}_{service}_1", check=False).stderr)
        down = compose(project, env, "down", "-t", "20")
        podman("network", "rm", "-f", f"{project}_default", check=False)  # podman-compose 1.0 leaves it behind
        assert down.returncode == 0, down.stderr[-2000:]


def mqtt_topics(host: str, count: int, timeout: float = 120) -> list[str]:
    """The topics of the first ``count`` messages under emotiond/ on the broker at ``host``."""
    import paho.mqtt.client as mqtt

    topics: list[str] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, userdata, flags, reason, properties: c.subscribe("emotiond/#")
    client.on_message = lambda c, userdata, message: topics.append(message.topic)
    client.connect(host, 1883)
    client.loop_start()
    try:
        wait_for(lambda: len(topics) >= count, timeout, what=f"{count} MQTT messages from the bridge")
    finally:
        client.loop_stop()
        client.disconnect()
    return topics


def _unauthorised(port: int) -> bool:
    try:
        urllib.request.urlopen(f"https://127.0.0.1:{port}/api/events", timeout=10, context=UNVERIFIED)
    except urllib.error.HTTPError as exc:
        return exc.code == 401
    return False
