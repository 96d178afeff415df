"""Credit-based dispatch: least-loaded workers, round-robin cameras, re-queue of a vanished worker's frames."""

from __future__ import annotations

from emotiond.capture.dispatch import Dispatcher


def make(lost: list) -> Dispatcher[str]:
    return Dispatcher(worker_timeout=3.0, on_lost=lambda camera, seq, frame: lost.append((camera, seq, frame)))


def test_frames_go_only_to_workers_with_credit_least_loaded_first():
    dispatcher = make([])
    assert dispatcher.free_worker() is None
    dispatcher.ready(b"w1", 10, 2, now=0)
    dispatcher.ready(b"w2", 11, 2, now=0)
    first = dispatcher.free_worker()
    dispatcher.assign(first, "cam0", 0, "f0")
    second = dispatcher.free_worker()
    assert second != first  # the other worker has more free credits
    dispatcher.assign(second, "cam0", 1, "f1")
    dispatcher.assign(dispatcher.free_worker(), "cam0", 2, "f2")
    dispatcher.assign(dispatcher.free_worker(), "cam0", 3, "f3")
    assert dispatcher.free_worker() is None
    assert dispatcher.done(first, "cam0", 0, now=1) == "f0"
    assert dispatcher.free_worker() == first


def test_cameras_are_served_round_robin():
    dispatcher = make([])
    dispatcher.ready(b"w1", 10, 8, now=0)
    for camera in ("a", "b", "c"):
        dispatcher.add_camera(camera)
    waiting = {"a": 5, "b": 5, "c": 0}
    order = [dispatcher.pick(lambda name: waiting[name] > 0)[0] for _ in range(4)]
    assert order == ["a", "b", "a", "b"]


def test_affinity_keeps_each_camera_on_one_worker_and_spreads_cameras():
    dispatcher = Dispatcher(worker_timeout=3.0, on_lost=lambda *a: None, affinity=True)
    dispatcher.ready(b"w1", 10, 2, now=0)
    dispatcher.ready(b"w2", 11, 2, now=0)
    for camera in ("a", "b"):
        dispatcher.add_camera(camera)
    owners = {}
    for seq in range(4):
        camera, worker = dispatcher.pick(lambda name: True)
        owners.setdefault(camera, set()).add(worker)
        dispatcher.assign(worker, camera, seq, "f")
    assert all(len(workers) == 1 for workers in owners.values())
    assert owners["a"] != owners["b"]
    assert dispatcher.pick(lambda name: True) is None  # both owners are out of credit
    lost_owner = next(iter(owners["a"]))
    dispatcher.unreachable(lost_owner)
    assert dispatcher.owner("a") == next(iter(owners["b"]))  # a moves to the surviving worker


def test_silent_worker_frames_are_handed_to_on_lost_in_order():
    lost: list = []
    dispatcher = make(lost)
    dispatcher.ready(b"w1", 10, 3, now=0)
    for seq in (5, 3, 4):
        dispatcher.assign(b"w1", "cam0", seq, f"f{seq}")
    dispatcher.heartbeat(b"w1", 10, 0, now=2.0)
    assert dispatcher.expire(now=4.0) == []
    assert dispatcher.expire(now=5.5) == [b"w1"]
    assert [seq for _, seq, _ in lost] == [3, 4, 5]
    assert dispatcher.free_worker() is None


def test_restarted_worker_with_same_name_releases_old_frames():
    lost: list = []
    dispatcher = make(lost)
    dispatcher.ready(b"w1", 10, 2, now=0)
    dispatcher.assign(b"w1", "cam0", 0, "f0")
    dispatcher.ready(b"w1", 99, 2, now=1)  # new pid: the old process is gone
    assert lost == [("cam0", 0, "f0")]
    assert dispatcher.workers[b"w1"].credits == 2


def test_requeued_frames_are_taken_before_new_ones():
    dispatcher = make([])
    dispatcher.add_camera("cam0")
    dispatcher.ready(b"w1", 10, 1, now=0)
    dispatcher.requeue("cam0", 7, "f7")
    assert dispatcher.pick(lambda name: False) == ("cam0", b"w1")
    assert dispatcher.take_retry("cam0") == (7, "f7")
    assert dispatcher.take_retry("cam0") is None


def test_cameras_are_rebalanced_when_a_worker_joins_late():
    dispatcher = Dispatcher(worker_timeout=3.0, on_lost=lambda *a: None, affinity=True)
    dispatcher.ready(b"w1", 10, 4, now=0)
    for camera in ("a", "b", "c", "d"):
        dispatcher.add_camera(camera)
        dispatcher.owner(camera)
    assert {dispatcher.owner(c) for c in "abcd"} == {b"w1"}
    dispatcher.ready(b"w2", 11, 4, now=1)
    owners = [dispatcher.owner(c) for c in "abcd"]
    assert owners.count(b"w1") == 2 and owners.count(b"w2") == 2
