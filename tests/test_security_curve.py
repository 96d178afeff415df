"""Security: local-only defaults, CURVE with a ZAP allow-list for anything beyond loopback, no pickle anywhere."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import msgpack
import pytest
import zmq

from emotiond.core import bus, endpoints, protocol
from emotiond.core.procfs import descendants
from emotiond.core.settings import ConfigError, Settings, load_settings

from support.daemon import REPO, child_env, free_port, metric_value, run_cli, wait_for

HANDSHAKE_EVENTS = (zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
                    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH)


@pytest.mark.parametrize(("endpoint", "exposed"), [
    ("ipc:///tmp/x.sock", False), ("tcp://127.0.0.1:5555", False), ("tcp://localhost:5555", False),
    ("tcp://[::1]:5555", False), ("tcp://0.0.0.0:5555", True), ("tcp://*:5555", True),
    ("tcp://192.168.1.20:5555", True), ("tcp://eth0:5555", True), ("tcp://camera-host:5555", True),
])
def test_exposed_endpoints_are_recognised(endpoint, exposed):
    assert endpoints.is_exposed(endpoint) is exposed


def test_defaults_are_local_only(tmp_path):
    settings = Settings()
    assert all(settings.endpoint(role).startswith("ipc://") for role in ("frames", "results_in", "results"))
    assert settings.metrics.host == "127.0.0.1"
    with pytest.raises(ConfigError, match="requires CURVE"):
        load_settings(None, {"bus": {"results_endpoint": f"tcp://0.0.0.0:{free_port()}"}})


def _listening_addresses(pids: list[int]) -> set[str]:
    """Local addresses of the LISTEN tcp sockets owned by ``pids`` (from /proc/net/tcp and tcp6)."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = fd.readlink().as_posix()
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.add(fields[1].split(":")[0])
    return found


def test_running_daemon_listens_on_loopback_only(start_daemon, videos, default_model):
    daemon = start_daemon("--source", f"tv={videos['one_face']}", "--realtime", "--loop", workers=1)
    daemon.wait_ready(1)  # a result: capture, a worker and the proxy have bound and connected everything
    addresses = _listening_addresses([daemon.process.pid, *descendants(daemon.process.pid)])
    assert addresses == {"0100007F"}, addresses  # 127.0.0.1, the metrics endpoint; everything else is ipc
    assert {p.name for p in daemon.runtime_dir.glob("*.sock")} == {"frames.sock", "results_in.sock", "results.sock"}
    assert all(p.stat().st_mode & 0o077 == 0 for p in daemon.runtime_dir.glob("*.sock"))


def test_exposed_bind_without_keys_is_refused(tmp_path, videos):
    env = child_env(tmp_path / "run", EMOTIOND_BUS__RESULTS_ENDPOINT=f"tcp://0.0.0.0:{free_port()}")
    result = run_cli("run", "--source", str(videos["one_face"]), env=env, timeout=60)
    assert result.returncode == 2
    assert "requires CURVE" in result.stderr and "emotiond keys generate" in result.stderr


@pytest.fixture
def keys(tmp_path) -> Path:
    directory = tmp_path / "keys"
    result = run_cli("keys", "generate", "--dir", str(directory), "--client", "daemon", "--client", "viewer",
                     "--client", "rogue", env=child_env(tmp_path / "cli"))
    assert result.returncode == 0, result.stderr
    assert "[security]" in result.stdout
    (directory / "authorized" / "rogue.key").unlink()  # rogue has a valid key pair, but is not allowed
    assert (directory / "server.key_secret").stat().st_mode & 0o077 == 0
    return directory


def _client_settings(keys: Path, name: str | None) -> Settings:
    if name is None:
        return Settings()
    return Settings.model_validate({"security": {"server_public_key": str(keys / "server.key"),
                                                 "client_secret_key": str(keys / f"{name}.key_secret")}})


def _subscriber(endpoint: str, keys: Path, name: str | None, ctx: zmq.Context) -> zmq.Socket:
    return bus.results_subscriber(endpoint, [b"result."], _client_settings(keys, name), ctx=ctx)


def _received_meanwhile(allowed: zmq.Socket, others: list[zmq.Socket], count: int, timeout: float = 60.0) -> list[int]:
    """Read ``count`` results on ``allowed`` (it may first have to wait for the daemon's first results); return how
    many each of ``others``, connected to the same endpoint, received in the meantime."""
    poller = zmq.Poller()
    for sock in (allowed, *others):
        poller.register(sock, zmq.POLLIN)
    received = dict.fromkeys((allowed, *others), 0)
    deadline = time.monotonic() + timeout
    while received[allowed] < count:
        assert time.monotonic() < deadline, f"the allowed subscriber got {received[allowed]} of {count} results"
        for sock, _ in poller.poll(200):
            protocol.decode(sock.recv_multipart())
            received[sock] += 1
    return [received[sock] for sock in others]


def public_key(keys: Path, name: str) -> str:
    """A client's public key as the ZAP handler names it (Z85)."""
    import zmq.auth

    return zmq.auth.load_certificate(keys / f"{name}.key")[0].decode()


def zap_verdicts(log: str, role: str, key: str) -> set[str]:
    """What the ZAP handler of the daemon's ``role`` process (proxy: results, capture: frames) said of ``key``
    (``[logging] level = "DEBUG"`` logs each verdict)."""
    return {verdict for line in log.splitlines() if f" {role}[" in line and key in line
            for verdict in ("ALLOWED", "DENIED") if f"{verdict} (CURVE)" in line}


class MonitoredSocket(zmq.Socket):
    """A socket whose handshakes are watched from its creation, before the product's code connects it: a refused
    client is not tried again, so its one handshake event must not be missed."""

    handshakes: zmq.Socket | None = None  # declared here: pyzmq takes an undeclared attribute for a socket option

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.socket_type != zmq.PAIR:  # the monitor's own socket is a PAIR
            self.handshakes = self.get_monitor_socket(HANDSHAKE_EVENTS)


class MonitoringContext(zmq.Context):
    _socket_class = MonitoredSocket


def handshake_outcome(sock: MonitoredSocket, timeout: float = 30.0) -> dict:
    """The socket's first handshake event: the client's own view of its admission or refusal. ``value`` of a ZAP
    refusal is the status code the handler gave, 400."""
    from zmq.utils.monitor import recv_monitor_message

    assert sock.handshakes is not None and sock.handshakes.poll(int(timeout * 1000)), "no handshake in time"
    return recv_monitor_message(sock.handshakes)


def _fake_worker(endpoint: str, keys: Path, name: str | None, ctx: zmq.Context, identity: str) -> zmq.Socket:
    settings = _client_settings(keys, name).model_copy(update={"bus": Settings().bus.model_copy(
        update={"frames_endpoint": endpoint})})
    sock = bus.frames_dealer(settings, identity, ctx=ctx)
    sock.send_multipart(protocol.encode_control(protocol.Control("ready", identity, 4242, credits=2)))
    return sock


def test_curve_admits_only_allowed_keys(start_daemon, keys, videos, default_model):
    ports = {role: free_port() for role in ("frames", "results_in", "results")}
    endpoints = {role: f"tcp://0.0.0.0:{port}" for role, port in ports.items()}
    env = {f"EMOTIOND_BUS__{role.upper()}_ENDPOINT": endpoint for role, endpoint in endpoints.items()}
    env.update({"EMOTIOND_SECURITY__SERVER_SECRET_KEY": str(keys / "server.key_secret"),
                "EMOTIOND_SECURITY__AUTHORIZED_KEYS_DIR": str(keys / "authorized"),
                "EMOTIOND_SECURITY__SERVER_PUBLIC_KEY": str(keys / "server.key"),
                "EMOTIOND_SECURITY__CLIENT_SECRET_KEY": str(keys / "daemon.key_secret"),
                "EMOTIOND_LOGGING__LEVEL": "DEBUG"})  # the ZAP handler's verdicts are logged at DEBUG
    daemon = start_daemon("--source", f"tv={videos['one_face']}", "--realtime", "--loop", workers=1, env=env)
    rogue_key, viewer_key = public_key(keys, "rogue"), public_key(keys, "viewer")
    ctx = MonitoringContext()
    try:
        results = f"tcp://127.0.0.1:{ports['results']}"
        rogue = _subscriber(results, keys, "rogue", ctx)
        plain = _subscriber(results, keys, None, ctx)
        allowed = _subscriber(results, keys, "viewer", ctx)
        # the allowed subscriber's results are the positive control for the same endpoint
        assert _received_meanwhile(allowed, [rogue, plain], 40, timeout=120) == [0, 0]  # a daemon start
        # and nothing reached the others because they were refused: the rogue key by the ZAP handler (its verdict
        # in the daemon's log, a 400 to the client), the client without keys by the CURVE handshake itself
        refused = handshake_outcome(rogue)
        assert (refused["event"], refused["value"]) == (zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400), refused
        assert handshake_outcome(plain)["event"] in (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                                                     zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        assert handshake_outcome(allowed)["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED  # positive control
        wait_for(lambda: zap_verdicts(daemon.log(), "proxy", rogue_key) == {"DENIED"}, 30,
                 "the results proxy's ZAP handler to deny the rogue key")
        assert zap_verdicts(daemon.log(), "proxy", viewer_key) == {"ALLOWED"}

        # Workers without allowed keys: no frames, and not even their messages reach capture's decoder.
        frames = f"tcp://127.0.0.1:{ports['frames']}"
        no_keys = _fake_worker(frames, keys, None, ctx, "intruder")
        wrong_keys = _fake_worker(frames, keys, "rogue", ctx, "rogue")
        for sock in (no_keys, wrong_keys):
            sock.send_multipart([b"ctl", b"\xc1", b""])  # 0xc1 is never valid msgpack
        assert handshake_outcome(wrong_keys)["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH
        assert handshake_outcome(no_keys)["event"] != zmq.EVENT_HANDSHAKE_SUCCEEDED
        wait_for(lambda: zap_verdicts(daemon.log(), "capture", rogue_key) == {"DENIED"}, 30,
                 "capture's ZAP handler to deny the rogue key")
        assert not no_keys.poll(100) and not wrong_keys.poll(100), "a worker without allowed keys got frames"
        allowed_worker = _fake_worker(frames, keys, "viewer", ctx, "guest")
        allowed_worker.send_multipart([b"ctl", b"\xc1", b""])
        wait_for(lambda: metric_value(daemon.metrics_text(), "emotiond_bad_messages_total", socket="frames") >= 1,
                 10, what="the allowed peer's message to reach capture")
        # the refused peers' messages were sent first; only the allowed peer's one reached the decoder
        assert metric_value(daemon.metrics_text(), "emotiond_bad_messages_total", socket="frames") == 1

        # The wire offers CURVE only: a raw ZMTP greeting from the server names the mechanism.
        with socket.create_connection(("127.0.0.1", ports["results"]), timeout=5) as raw:
            raw.sendall(b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03")  # ZMTP signature and major version only
            greeting = b""
            while len(greeting) < 64:
                chunk = raw.recv(64 - len(greeting))
                if not chunk:
                    break
                greeting += chunk
        assert greeting[12:17] == b"CURVE", greeting
        assert "CURVE allow-list: 2 client key(s)" in daemon.log()  # daemon and viewer; rogue's key is not in it
        assert zap_verdicts(daemon.log(), "capture", viewer_key) == {"ALLOWED"}
    finally:
        ctx.destroy(linger=0)
    assert daemon.stop() == 0


def test_nothing_unpickles_network_data():
    pattern = re.compile(r"\b(pickle|cPickle|marshal|shelve|dill|recv_pyobj|recv_serialized|jsonpickle)\b")
    offenders = []
    for package in ("daemon", "workers", "clients"):
        for path in (REPO / package).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, offenders


@pytest.mark.parametrize("topic", [b"ctl", b"result.cam0"])
def test_msgpack_extension_types_are_refused_at_any_depth(topic):
    """An extension type is never turned into an object: refused as bad msgpack, even deep inside a map."""
    if topic == b"ctl":
        body = {"v": 1, "kind": "ready", "worker": "w", "pid": 1, "credits": 2, "camera": "", "seq": -1}
    else:
        body = {"kind": "result", **protocol.Result("cam0", 1, 1.0, 2.0, (64, 48), (), {}, "w", "m").to_dict()}
    assert protocol.decode([topic, msgpack.packb(body), b""])  # positive control: the plain message is valid
    for hidden in ({"extra": msgpack.ExtType(1, b"os.system")},
                   {"extra": {"deeper": [1, {"x": msgpack.ExtType(42, b"payload")}]}}):
        with pytest.raises(protocol.ProtocolError) as refused:
            protocol.decode([topic, msgpack.packb({**body, **hidden}), b""])
        assert refused.value.reason == "bad_msgpack", refused.value
    with pytest.raises(protocol.ProtocolError) as refused:
        protocol.decode([topic, msgpack.packb(msgpack.ExtType(1, b"os.system")), b""])
    assert refused.value.reason == "bad_msgpack", refused.value


def test_keys_generate_is_in_the_cli(tmp_path):
    result = run_cli("keys", "generate", "--help", env=child_env(tmp_path / "run"))
    assert result.returncode == 0 and "--client" in result.stdout
