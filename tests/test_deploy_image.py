"""The image `make image` builds: run from it, the demo gives results over tcp with CURVE to a subscriber on the
host; it runs as a non-root user, has no TensorFlow, passes its health check and stops cleanly."""

from __future__ import annotations

import json
import time

import pytest
import zmq

from emotiond.benchmarks.harness import free_port
from emotiond.clients.subscribe import Subscription
from emotiond.core import protocol
from emotiond.core.settings import Settings

from support.daemon import wait_for
from support.podman import IMAGE, IMAGE_UID, container_keys, podman, require_image, unique_name

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(600)]


def test_image_serves_the_demo_to_a_subscriber_on_the_host(tmp_path):
    require_image()
    keys = container_keys(tmp_path / "keys", ["daemon", "viewer", "rogue"])
    (keys / "authorized" / "rogue.key").unlink()
    port = free_port()
    name = unique_name("emotiond-image-test")
    env = {"EMOTIOND_BUS__RESULTS_ENDPOINT": "tcp://0.0.0.0:5552",
           "EMOTIOND_SECURITY__SERVER_SECRET_KEY": "/keys/server.key_secret",
           "EMOTIOND_SECURITY__AUTHORIZED_KEYS_DIR": "/keys/authorized",
           "EMOTIOND_SECURITY__SERVER_PUBLIC_KEY": "/keys/server.key",
           "EMOTIOND_SECURITY__CLIENT_SECRET_KEY": "/keys/daemon.key_secret"}
    started = time.monotonic()
    podman("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:5552", "-v", f"{keys}:/keys:ro",
           *(f"--env={k}={v}" for k, v in env.items()),
           IMAGE, "emotiond", "run", "--config", "/etc/emotiond/emotiond.toml", "--source", "demo", "--loop")
    try:
        def client(identity: str) -> Settings:
            return Settings.model_validate({"security": {"server_public_key": str(keys / "server.key"),
                                                         "client_secret_key": str(keys / f"{identity}.key_secret")}})

        endpoint = f"tcp://127.0.0.1:{port}"
        results = ("result",)
        with zmq.Context() as ctx, Subscription(endpoint, kinds=results, settings=client("viewer"), ctx=ctx) as ok, \
                Subscription(endpoint, kinds=results, settings=client("rogue"), ctx=ctx) as rogue:
            got: list[protocol.Result] = []
            refused: list[object] = []
            first_result = None
            deadline = time.monotonic() + 240
            while len(got) < 30:
                assert time.monotonic() < deadline, f"{len(got)} results:\n{podman('logs', name).stderr[-3000:]}"
                got += [m for m in ok.receive(200) if isinstance(m, protocol.Result)]
                if first_result is None and got:
                    first_result = time.monotonic() - started
                refused += rogue.receive(0)
            assert refused == [], "a subscriber whose key the container does not allow got results"
        assert {r.camera for r in got} == {"cam0"} and any(r.faces for r in got)

        assert podman("exec", name, "id", "-u").stdout.strip() == str(IMAGE_UID)
        wait_for(lambda: podman("healthcheck", "run", name, check=False).returncode == 0, 60,
                 what="the container's health check to pass")
        probe = podman("exec", name, "python3", "-c", "import tensorflow", check=False)
        assert probe.returncode != 0 and "No module named 'tensorflow'" in probe.stderr
        size = int(json.loads(podman("image", "inspect", IMAGE).stdout)[0]["Size"])
        print(f"image {IMAGE}: {size / 1e6:.0f} MB; from podman run to the first result on the host: "
              f"{first_result:.1f} s")
    finally:
        podman("stop", "-t", "20", name, check=False)
        state = json.loads(podman("inspect", name).stdout)[0]["State"]
        podman("rm", "-f", name, check=False)
    assert state["ExitCode"] == 0, state
