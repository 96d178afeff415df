"""Hostile input: hypothesis-generated messages thrown at every socket that accepts input.

Targets: the decoder itself, capture's frames ROUTER (as a fake worker), a worker's DEALER (from a fake capture
ROUTER), and the proxy's XSUB (as a fake publisher) and XPUB (as a fake subscriber). Every process must survive,
and every refused message must be counted under its reason in ``emotiond_bad_messages_total``.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emotiond.core import protocol

from support.daemon import EMOTIOND, REPO, child_env, child_pids, free_port, metric_value, scrape, wait_for

MAX_MESSAGE_BYTES = 1_500_000  # above one raw 640x480 frame, far below the default
FUZZ_ENV = {"EMOTIOND_BUS__MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES)}
CASES = {"decoder": 3000, "capture": 1500, "worker": 800, "proxy": 1000}
MIN_SHARE_RUN = 0.95  # of CASES each target must actually have generated (hypothesis may stop a little early)
RUN = settings(deadline=None, database=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.function_scoped_fixture])
TOTALS: Counter = Counter()  # cases generated per target, checked by the last test of this module
# The last test reads what the others counted in this process, so the module runs on one xdist worker.
pytestmark = pytest.mark.xdist_group("test_fuzz_sockets.py")

# ---------------------------------------------------------------- strategies

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(allow_nan=True),
                    st.text(max_size=20), st.binary(max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)
cameras = st.one_of(st.just("cam"), st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True), st.text(max_size=70))


def _valid_bodies(camera: str, seq: int, shape: tuple[int, int, int]) -> dict[str, tuple[bytes, dict, bytes]]:
    frame = {"v": 1, "kind": "frame", "camera": camera, "seq": seq, "captured_at": 1.0, "shape": list(shape),
             "dtype": "uint8", "encoding": "raw"}
    result = protocol.Result(camera, seq, 1.0, 2.0, (shape[1], shape[0]),
                             (protocol.Face((1, 2, 3, 4), "happy", 0.9, {"happy": 0.9}),), {"total": 1.0}, "w", "m")
    status = protocol.Status(camera, "up", "ok", 1.0, 0)
    control = {"v": 1, "kind": "done", "worker": "w", "pid": 1, "credits": 0, "camera": camera, "seq": seq}
    pixels = bytes(shape[0] * shape[1] * shape[2])
    return {"frame": (b"frame." + camera.encode(), frame, pixels),
            "result": (b"result." + camera.encode(), {"kind": "result", **result.to_dict()}, b""),
            "status": (b"status." + camera.encode(), {"kind": "status", **status.to_dict()}, b""),
            "control": (b"ctl", control, b"")}


@st.composite
def mutated(draw) -> list[bytes]:
    """A valid message of some kind, then damaged: wrong version or types, missing keys, bad topic, cut short."""
    camera = draw(st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True))
    shape = (draw(st.integers(1, 48)), draw(st.integers(1, 48)), draw(st.sampled_from([1, 3])))
    topic, header, payload = _valid_bodies(camera, draw(st.integers(0, 10**6)), shape)[
        draw(st.sampled_from(["frame", "result", "status", "control"]))]
    header = dict(header)
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["drop", "retype", "version", "add", "kind", "shape"]))
        if action == "drop" and header:
            header.pop(draw(st.sampled_from(sorted(header))))
        elif action == "retype" and header:
            header[draw(st.sampled_from(sorted(header)))] = draw(values)
        elif action == "version":
            header["v"] = draw(st.one_of(st.integers(-3, 5), st.just(True), st.text(max_size=3)))
        elif action == "add":
            header[draw(st.text(max_size=8))] = draw(values)
        elif action == "kind":
            header["kind"] = draw(st.sampled_from(["frame", "result", "status", "ready", "heartbeat", "x", ""]))
        elif action == "shape":
            header["shape"] = draw(st.lists(st.integers(-5, 70000), max_size=4))
    packed = msgpack.packb(header, use_bin_type=True)
    parts = [topic, packed, payload]
    damage = draw(st.sampled_from(["none", "truncate_header", "truncate_payload", "topic", "parts", "pad"]))
    if damage == "truncate_header":
        parts[1] = packed[: draw(st.integers(0, max(0, len(packed) - 1)))]
    elif damage == "truncate_payload" and payload:
        parts[2] = payload[: draw(st.integers(0, len(payload) - 1))]
    elif damage == "topic":
        parts[0] = draw(st.one_of(st.binary(max_size=20), st.sampled_from([b"frame.", b"result.a.b", b"ctl2"]),
                                  cameras.map(lambda c: b"status." + c.encode("utf-8", "replace"))))
    elif damage == "parts":
        parts = parts[: draw(st.integers(1, 2))] if draw(st.booleans()) else [*parts, draw(st.binary(max_size=8))]
    elif damage == "pad":
        parts[2] = payload + draw(st.binary(min_size=1, max_size=16))
    return parts


garbage = st.lists(st.binary(max_size=64), min_size=1, max_size=5)
oversized_header = st.integers(protocol.MAX_HEADER_BYTES + 1, protocol.MAX_HEADER_BYTES + 4096).map(
    lambda n: [b"ctl", msgpack.packb({"v": 1, "kind": "ready", "pad": "x" * n}), b""])
messages = st.one_of(mutated(), mutated(), mutated(), garbage, oversized_header)


def verdict(parts: list[bytes]) -> str:
    """What the decoder says: the refusal reason, or the kind of valid message."""
    try:
        message = protocol.decode(parts)
    except protocol.ProtocolError as exc:
        return exc.reason
    return type(message).__name__.lower()


# ---------------------------------------------------------------- the decoder alone

@pytest.mark.slow  # 3000 generated messages: about 20 s, more under load
def test_decoder_refuses_with_a_reason_and_never_raises_anything_else():
    seen: Counter = Counter()

    @settings(RUN, max_examples=CASES["decoder"])
    @given(messages)
    def check(parts):
        seen[verdict(parts)] += 1  # any exception other than ProtocolError fails here

    check()
    TOTALS["decoder"] = sum(seen.values())
    print(f"decoder: {sum(seen.values())} cases: {dict(seen)}")
    assert {"bad_msgpack", "bad_header", "bad_version", "bad_parts", "bad_topic", "oversized"} <= set(seen)


# ---------------------------------------------------------------- sockets of a running daemon

def _fuzz(target: str, sock: zmq.Socket, prefix: list[bytes] | None = None, keep=lambda v: True,
          pause_every: int = 0) -> Counter:
    """Send the target's generated messages; returns the decoder's verdict per message actually sent, and counts
    the cases generated in TOTALS.

    ``pause_every`` paces the burst so a high-water mark downstream does not drop what the test wants to see.
    """
    sent: Counter = Counter()

    @settings(RUN, max_examples=CASES[target])
    @given(messages)
    def send(parts):
        TOTALS[target] += 1
        outcome = verdict(parts)
        if not keep(outcome):
            return
        sock.send_multipart([*(prefix or []), *parts])
        sent[outcome] += 1
        if pause_every and sum(sent.values()) % pause_every == 0:
            time.sleep(0.02)  # pacing the sender, not waiting for anything

    send()
    return sent


def _as_counted(sent: Counter, unexpected: tuple[str, ...], accepted: tuple[str, ...] = ()) -> Counter:
    """The metric a socket should show: refusals by reason, valid messages of the wrong kind as unexpected_kind."""
    expected: Counter = Counter()
    for outcome, count in sent.items():
        if outcome not in accepted:
            expected["unexpected_kind" if outcome in unexpected else outcome] += count
    return expected


def _counted(text: str, socket: str, reasons) -> dict[str, float]:
    return {r: metric_value(text, "emotiond_bad_messages_total", socket=socket, reason=r) for r in reasons}


def test_capture_router_survives_a_hostile_worker(start_daemon, videos, default_model):
    daemon = start_daemon("--source", f"tv={videos['one_face']}", "--realtime", "--loop", workers=1, env=FUZZ_ENV)
    daemon.wait_ready(1)
    pids = child_pids(daemon)
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.ROUTING_ID, b"fuzzer")
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.connect(f"ipc://{daemon.runtime_dir / 'frames'}.sock")
        # valid control messages would enrol the fuzzer as a worker; everything else must be refused and counted
        sent = _fuzz("capture", sock, keep=lambda v: v != "control")
        expected = _as_counted(sent, unexpected=("frame", "result", "status"))
        wait_for(lambda: _counted(daemon.metrics_text(), "frames", expected) == dict(expected), 20,
                 what=f"capture to count {dict(expected)}")
    finally:
        ctx.destroy(linger=0)
    assert child_pids(daemon) == pids, "a child was restarted"
    assert metric_value(daemon.metrics_text(), "emotiond_process_restarts_total") == 0
    print(f"capture ROUTER: {sum(sent.values())} hostile messages, counted by reason: {dict(expected)}")
    assert daemon.stop() == 0


def test_proxy_forwards_only_what_decoders_can_judge(start_daemon, watch, videos, default_model):
    daemon = start_daemon("--source", f"tv={videos['one_face']}", "--realtime", "--loop", workers=1, env=FUZZ_ENV)
    daemon.wait_ready(1)
    pids = child_pids(daemon)
    watcher = watch(daemon.results_endpoint, ("*",))
    ctx = zmq.Context()
    try:
        publisher = ctx.socket(zmq.XPUB)
        publisher.setsockopt(zmq.SNDHWM, 0)
        publisher.connect(f"ipc://{daemon.runtime_dir / 'results_in'}.sock")
        hostile_subscriber = ctx.socket(zmq.XSUB)
        hostile_subscriber.connect(daemon.results_endpoint)
        ping = protocol.Status("fuzzer", "up", "subscribed", 1.0, 0)
        wait_for(lambda: publisher.send_multipart(protocol.encode_status(ping))
                 or [s for s in watcher.statuses() if s.camera == "fuzzer"], 10, interval=0.1,
                 what="the fake publisher's valid message to reach the subscriber")
        sent = _fuzz("proxy", publisher, pause_every=16)
        for parts in ([b"\x01"], [b"\x00garbage"], [b"\x02\xff" * 100], [b"\x01" + b"x" * 5000]):
            hostile_subscriber.send_multipart(parts)  # subscription frames that are not subscriptions
        refused = sum(n for v, n in sent.items() if v not in ("frame", "result", "status", "control"))
        # each refused message reaches the subscriber's decoder and is counted there (the socket stays open
        # until then: closing it with linger 0 would discard what is still queued)
        wait_for(lambda: watcher.invalid >= refused, 20, what=f"the subscriber to refuse {refused} messages")
    finally:
        ctx.destroy(linger=0)
    since = time.time()
    wait_for(lambda: watcher.results_after(since), 10, what="real results after the fuzzing")
    assert child_pids(daemon) == pids, "a child was restarted"
    assert watcher.invalid == refused, (watcher.invalid, refused)
    print(f"proxy XSUB: {sum(sent.values())} messages from a fake publisher; subscriber decoder refused "
          f"{watcher.invalid} ({refused} expected)")
    assert daemon.stop() == 0


@pytest.fixture
def lone_worker(tmp_path, default_model):
    """``emotiond worker`` connected to a capture ROUTER and proxy XSUB that the test owns."""
    ctx = zmq.Context()
    frames, results_in = f"ipc://{tmp_path / 'frames.sock'}", f"ipc://{tmp_path / 'results_in.sock'}"
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.SNDHWM, 0)
    router.bind(frames)
    xsub = ctx.socket(zmq.XSUB)
    xsub.bind(results_in)
    port = free_port()
    env = child_env(tmp_path / "run", EMOTIOND_BUS__FRAMES_ENDPOINT=frames,
                    EMOTIOND_BUS__RESULTS_IN_ENDPOINT=results_in, **FUZZ_ENV)
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([*EMOTIOND, "worker", "--name", "fz", "--metrics-port", str(port)], cwd=REPO,
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
    yield router, xsub, process, port, log_path
    process.kill()
    process.wait(5)
    ctx.destroy(linger=0)


def _wait_until_results_flow(router: zmq.Socket, xsub: zmq.Socket, identity: bytes) -> None:
    """Send a valid warm-up frame until its result comes back. An XSUB hands its subscriptions to a publisher
    only when the XSUB itself next processes its socket events, so it must be polled before the fuzzing starts,
    or the worker publishes to nobody."""
    pixels = np.zeros((48, 64, 3), np.uint8)
    deadline = time.monotonic() + 30
    for seq in range(1000):
        assert time.monotonic() < deadline, "no result for a valid warm-up frame"
        header = protocol.FrameHeader("warmup", seq, time.time(), pixels.shape)
        router.send_multipart([identity, *protocol.encode_frame(header, pixels)])
        while xsub.poll(1000):
            if verdict(xsub.recv_multipart()) == "result":
                while xsub.poll(200):  # leave no warm-up result behind
                    xsub.recv_multipart()
                return


def test_worker_dealer_survives_a_hostile_capture(lone_worker):
    router, xsub, process, port, log_path = lone_worker
    assert router.poll(60_000), Path(log_path).read_text()[-2000:]
    identity, *ready = router.recv_multipart()
    assert identity == b"fz" and verdict(ready) == "control"
    xsub.send(b"\x01")  # subscribe to everything the worker publishes
    _wait_until_results_flow(router, xsub, identity)
    sent = _fuzz("worker", router, prefix=[identity])
    expected = _as_counted(sent, unexpected=("result", "status", "control"), accepted=("frame",))

    wait_for(lambda: _counted(scrape(port), "worker", expected) == dict(expected), 30,
             what=f"worker to count {dict(expected)}")
    assert process.poll() is None, Path(log_path).read_text()[-2000:]
    published = 0
    deadline = time.monotonic() + 30  # the counters above can be complete before the last frames are answered
    while (published < sent["frame"] and time.monotonic() < deadline) or xsub.poll(200):
        if xsub.poll(200):
            published += verdict(xsub.recv_multipart()) == "result"
    assert published == sent["frame"], (published, sent["frame"])  # odd-shaped valid frames are still processed
    print(f"worker DEALER: {sum(sent.values())} messages ({sent['frame']} valid frames of odd shapes, all "
          f"answered); refused by reason: {dict(expected)}")


def _monitor_events(monitor: zmq.Socket, timeout_ms: int) -> list[int]:
    """The socket events reported on a monitor socket within ``timeout_ms`` of the first."""
    from zmq.utils.monitor import recv_monitor_message

    found = []
    while monitor.poll(timeout_ms):
        found.append(recv_monitor_message(monitor)["event"])
        timeout_ms = 100
    return found


def test_oversized_message_is_refused_by_zeromq(start_daemon, watch, videos, default_model):
    """A message over bus.max_message_bytes makes ZeroMQ drop the sender's connection before the proxy reads it.

    Positive control first: the same publisher's small message arrives. Then the oversized one never does, the
    publisher is disconnected (its monitor says so), and small messages pass again after it reconnects.
    """
    daemon = start_daemon("--source", f"tv={videos['one_face']}", "--realtime", "--loop", workers=1, env=FUZZ_ENV)
    daemon.wait_ready(1)
    watcher = watch(daemon.results_endpoint, ("status",), ("huge",))
    results_in = f"ipc://{daemon.runtime_dir / 'results_in'}.sock"

    def delivered(text: str) -> list[protocol.Status]:
        return [s for s in watcher.statuses() if s.message == text]

    def send_until_delivered(sock: zmq.Socket, text: str) -> None:
        status = protocol.encode_status(protocol.Status("huge", "up", text, 1.0, 0))
        wait_for(lambda: sock.send_multipart(status) or delivered(text), 10, interval=0.2,
                 what=f"the small message {text!r} to arrive")

    ctx = zmq.Context()
    try:
        publisher = ctx.socket(zmq.PUB)
        publisher.setsockopt(zmq.LINGER, 0)
        monitor = publisher.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        publisher.connect(results_in)
        send_until_delivered(publisher, "small, before")
        assert zmq.EVENT_CONNECTED in _monitor_events(monitor, 1000)

        big = protocol.encode_status(protocol.Status("huge", "up", "oversized", 1.0, 0))
        big[2] = b"\x00" * (MAX_MESSAGE_BYTES + 1)
        publisher.send_multipart(big)
        events = _monitor_events(monitor, 10_000)
        assert events[:1] == [zmq.EVENT_DISCONNECTED], f"the oversized sender was not disconnected: {events}"

        send_until_delivered(publisher, "small, after reconnecting")  # the same publisher, reconnected
        fresh = ctx.socket(zmq.PUB)
        fresh.setsockopt(zmq.LINGER, 0)
        fresh.connect(results_in)
        send_until_delivered(fresh, "small, from a fresh publisher")
        publisher.disable_monitor()
    finally:
        ctx.destroy(linger=0)
    assert not delivered("oversized"), "an oversized message went through the proxy"
    assert watcher.invalid == 0, watcher.bad_messages
    assert daemon.stop() == 0


@pytest.mark.process  # it reads the counts of the targets that start processes
def test_zz_every_fuzz_target_ran_its_cases():
    """Runs last in this module: every target above ran (none skipped or deselected) and generated its cases."""
    print(f"fuzz cases: {dict(TOTALS)}, total {sum(TOTALS.values())}")
    missing = set(CASES) - set(TOTALS)
    assert not missing, f"fuzz targets that did not run: {sorted(missing)} (run this module whole)"
    for target, cases in CASES.items():
        assert TOTALS[target] >= MIN_SHARE_RUN * cases, f"{target}: {TOTALS[target]} of {cases} cases generated"
