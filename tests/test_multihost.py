"""Multi-host over a real network: a daemon host (capture, proxy, metrics and no worker of its own), two worker
hosts running `emotiond worker`, a subscriber host and a host holding a CURVE key the daemon does not allow, each a
network namespace on one bridged LAN (support/lan.py), every endpoint tcp with CURVE. The daemon logs at DEBUG, where
its ZAP handlers name each key they allow or deny and the address it came from.

One LAN and one pair of workers serve both cases; each case starts its own daemon on the daemon host, and the
workers reconnect to it by themselves, as they would across a daemon restart in production.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from emotiond.capture import synthetic

from support.daemon import EMOTIOND, REPO, child_env, metric_value, run_cli, wait_for
from support.lan import lan
from support.netns import NetNamespace

# two daemon runs, three workers on a loaded machine; a camera must move within WORKER_TIMEOUT + 4 s of a cut
pytestmark = [pytest.mark.slow, pytest.mark.serial, pytest.mark.timeout(400)]

WORKERS = ("worker1", "worker2")
HOSTS = ("daemon", *WORKERS, "subscriber", "rogue")
PORTS = {"frames": 5550, "results_in": 5551, "results": 5552}  # the daemon host is a namespace of our own
METRICS_PORT = 9108
WORKER_TIMEOUT = 2.0
CLIP_FRAMES = 120  # file mode: the cut comes after 20 results, and the other host does the rest
VISITOR = "visitor"  # an allowed key, used from the rogue host: what the rogue key lacks is the key, not the route


@dataclass
class Site:
    hosts: dict[str, NetNamespace]
    keys: Path
    root: Path
    workers: dict[str, subprocess.Popen]
    logs: dict[int, Path] = field(default_factory=dict)  # pid -> the log of each process started

    def endpoint(self, role: str) -> str:
        return f"tcp://{self.hosts['daemon'].address}:{PORTS[role]}"

    def env(self, name: str, identity: str, **extra: str) -> dict[str, str]:
        """The environment of a process on host ``name``: the daemon's endpoints, this identity's CURVE keys."""
        values = {f"EMOTIOND_BUS__{role.upper()}_ENDPOINT": self.endpoint(role) for role in PORTS}
        values.update({"EMOTIOND_SECURITY__SERVER_PUBLIC_KEY": str(self.keys / "server.key"),
                       "EMOTIOND_SECURITY__CLIENT_SECRET_KEY": str(self.keys / f"{identity}.key_secret"),
                       "EMOTIOND_BUS__FRAME_ENCODING": "jpeg", **extra})
        return child_env(self.root / f"run-{name}-{time.monotonic_ns()}", **values)

    def start(self, host: str, identity: str, args: list[str], log_name: str, **extra: str) -> subprocess.Popen:
        with (self.root / log_name).open("w") as log:
            process = self.hosts[host].popen([*EMOTIOND, *args], cwd=REPO, env=self.env(host, identity, **extra),
                                             stdout=log, stderr=subprocess.STDOUT)
        self.logs[process.pid] = self.root / log_name
        return process

    def log(self, process: subprocess.Popen) -> str:
        return self.logs[process.pid].read_text(errors="replace")

    def start_daemon(self, *args: str) -> subprocess.Popen:
        return self.start("daemon", "daemon", ["run", "--metrics-port", str(METRICS_PORT), *args],
                          f"daemon-{time.monotonic_ns()}.log",
                          EMOTIOND_SECURITY__SERVER_SECRET_KEY=str(self.keys / "server.key_secret"),
                          EMOTIOND_SECURITY__AUTHORIZED_KEYS_DIR=str(self.keys / "authorized"),
                          EMOTIOND_WORKERS__LOCAL="false", EMOTIOND_LOGGING__LEVEL="DEBUG",
                          EMOTIOND_CAPTURE__WORKER_TIMEOUT_SECONDS=str(WORKER_TIMEOUT))

    def events(self, host: str, identity: str, *args: str) -> tuple[subprocess.Popen, Path]:
        out = self.root / f"events-{host}-{time.monotonic_ns()}.jsonl"
        with out.open("w") as fh, out.with_suffix(".err").open("w") as err:
            process = self.hosts[host].popen([*EMOTIOND, "events", *args], cwd=REPO, env=self.env(host, identity),
                                             stdout=fh, stderr=err)
        return process, out

    @staticmethod
    def wait_listening(process: subprocess.Popen, out: Path) -> None:
        """Until an ``emotiond events`` process has subscribed (it says so on stderr after a few silent seconds)."""
        def listening() -> bool:
            assert process.poll() is None, out.with_suffix(".err").read_text()
            return "nothing heard" in out.with_suffix(".err").read_text()

        wait_for(listening, 60, what="the subscriber to listen")

    def daemon_metrics(self) -> str:
        fetch = ("import sys, urllib.request; "
                 "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())")
        done = self.hosts["daemon"].run([sys.executable, "-c", fetch, f"http://127.0.0.1:{METRICS_PORT}/metrics"],
                                        timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def public_key(self, identity: str) -> str:
        import zmq.auth

        return zmq.auth.load_certificate(self.keys / f"{identity}.key")[0].decode()


def zap_verdicts(log: str, role: str, key: str) -> set[tuple[str, str]]:
    """(verdict, client address) for each time the ZAP handler of the daemon's ``role`` process (proxy: results,
    capture: frames) judged ``key``: each verdict line follows the request line naming the address, in its process."""
    found, address = set(), {}
    for line in log.splitlines():
        process = re.search(rf" ({role}\[\d+\]) emotiond\.zap: ", line)
        if process is None:
            continue
        if (request := re.search(r"address: '([^']*)'", line)) is not None:
            address[process.group(1)] = request.group(1)
        for verdict in ("ALLOWED", "DENIED"):
            if f"{verdict} (CURVE)" in line and key in line:
                found.add((verdict, address.get(process.group(1), "?")))
    return found


def results(path: Path) -> list[dict]:
    """The results an `emotiond events` process has printed so far (a line being written is left for later)."""
    lines = path.read_text().splitlines(keepends=True)
    return [json.loads(line) for line in lines if line.endswith("\n") and '"seq"' in line]


def stop(process: subprocess.Popen, timeout: float = 30) -> int:
    if process.poll() is None:
        process.terminate()
    return process.wait(timeout)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return synthetic.write_video(tmp_path_factory.mktemp("multihost") / "clip.mp4",
                                 synthetic.SceneSpec(faces=1, width=320, height=240, frames=CLIP_FRAMES))


@pytest.fixture(scope="module")
def site(tmp_path_factory, default_model) -> Site:
    root = tmp_path_factory.mktemp("site")
    keys = root / "keys"
    made = run_cli("keys", "generate", "--dir", str(keys),
                   *(f"--client={n}" for n in ("daemon", *HOSTS[1:], VISITOR)),
                   env=child_env(root / "keys-run"))
    assert made.returncode == 0, made.stderr
    (keys / "authorized" / "rogue.key").unlink()  # the rogue host has a key pair the daemon does not allow
    with lan(HOSTS) as hosts:
        site = Site(hosts, keys, root, {})
        for name in WORKERS:
            site.workers[name] = site.start(name, name, ["worker", "--name", name], f"{name}.log")
        yield site
        for process in site.workers.values():
            stop(process)


def test_live_camera_moves_off_a_cut_host_and_back_and_a_wrong_key_gets_nothing(site, clip):
    subscriber, seen = site.events("subscriber", "subscriber")
    rogue, rogue_seen = site.events("rogue", "rogue")
    visitor, visitor_seen = site.events("rogue", VISITOR)
    # started here, not with the site: a refused client is not tried again, so it must meet this test's daemon first
    rogue_worker = site.start("rogue", "rogue", ["worker", "--name", "rogue"], "rogue.log")
    daemon = site.start_daemon(*(f"--source=cam{i}={clip}" for i in (1, 2)), "--realtime", "--loop")
    try:
        serving = wait_for(lambda: _serving_all(seen, WORKERS), 120, what="both worker hosts to serve a camera")
        camera = "cam1"
        cut, other = serving[camera], next(w for w in WORKERS if w != serving[camera])
        cut_at = time.time()
        site.hosts[cut].link_down()
        moved = wait_for(lambda: next((r for r in results(seen) if r["camera"] == camera and r["worker"] == other
                                       and r["captured_at"] > cut_at), None),
                         60, what=f"{camera} to move from {cut} to {other}")
        # A worker is presumed lost after WORKER_TIMEOUT of silence and its camera goes to another at once
        # (measured: 2.0 s after the cut); the slack is for a capture loop starved by a loaded machine.
        print(f"{camera} moved from {cut} to {other} {moved['captured_at'] - cut_at:.2f} s after the cut")
        assert moved["captured_at"] - cut_at < WORKER_TIMEOUT + 4.0, moved["captured_at"] - cut_at
        lost = metric_value(site.daemon_metrics(), "emotiond_frames_dropped_total", camera=camera,
                            reason="worker_lost")
        assert lost >= 1, "the frames sent to the cut host before it was presumed lost are not counted"

        back_at = time.time()
        site.hosts[cut].link_up()
        rejoined = wait_for(lambda: next((r for r in results(seen) if r["worker"] == cut
                                          and r["captured_at"] > back_at), None),
                            60, what=f"{cut} to rejoin and take a camera again")
        print(f"{cut} served again {rejoined['captured_at'] - back_at:.2f} s after its link came back")

        # The allowed subscriber's stream is the positive control for the same endpoint the rogue host uses: it got
        # results from both hosts, before the cut and after the rejoin (a loaded machine serves only a few a second).
        assert len(results(seen)) >= 10 and {r["worker"] for r in results(seen)} == set(WORKERS)
        # From the rogue host itself, an allowed key gets results: its address and route are fine.
        wait_for(lambda: len(results(visitor_seen)) >= 3, 30, what="results for the allowed key on the rogue host")
        assert rogue.poll() is None and results(rogue_seen) == [], "a host with a wrong key got results"
        assert rogue_worker.poll() is None, "the rogue worker is not even running"
        assert not [r for r in results(seen) if r["worker"] == "rogue"], "a worker with a wrong key got frames"
        # ... because the daemon's ZAP handlers denied its key, coming from the rogue host, on both endpoints
        rogue_host = site.hosts["rogue"].address
        log = site.log(daemon)
        assert zap_verdicts(log, "proxy", site.public_key("rogue")) == {("DENIED", rogue_host)}
        assert zap_verdicts(log, "capture", site.public_key("rogue")) == {("DENIED", rogue_host)}
        assert zap_verdicts(log, "proxy", site.public_key(VISITOR)) == {("ALLOWED", rogue_host)}
        assert ("ALLOWED", site.hosts["subscriber"].address) in zap_verdicts(log, "proxy",
                                                                            site.public_key("subscriber"))
    finally:
        assert stop(daemon) == 0
        for process in (subscriber, rogue, visitor, rogue_worker):
            stop(process)


def test_file_mode_loses_no_frame_when_a_worker_host_is_cut(site, clip):
    subscriber, seen = site.events("subscriber", "subscriber", "--until-eos", "--timeout", "180")
    site.wait_listening(subscriber, seen)  # a finite file: the subscriber must be there before its first result
    daemon = site.start_daemon(f"--source=cam0={clip}")
    cut = wait_for(lambda: (got := results(seen)) and len(got) >= 20 and got[-1]["worker"], 120,
                   what="20 results")
    site.hosts[cut].link_down()
    try:
        assert daemon.wait(180) == 0
        subscriber.wait(60)
    finally:
        site.hosts[cut].link_up()
        stop(daemon)
    got = results(seen)
    assert {r["seq"] for r in got} == set(range(CLIP_FRAMES)), "frames of the cut host were not sent again"
    assert {r["worker"] for r in got} == set(WORKERS)


def _serving_all(path: Path, workers: tuple[str, ...]) -> dict[str, str] | None:
    """camera -> the worker of its latest result, once every worker serves one."""
    latest = {r["camera"]: r["worker"] for r in results(path)}
    return latest if set(latest.values()) >= set(workers) and len(latest) == len(workers) else None
