"""Dispatch under misbehaving peers: repeated acknowledgements must not mint credits."""

from __future__ import annotations

from emotiond.capture.dispatch import Dispatcher


def test_repeated_done_messages_cannot_inflate_credits():
    dispatcher: Dispatcher[str] = Dispatcher(worker_timeout=3.0, on_lost=lambda *a: None, max_credits=2)
    dispatcher.ready(b"w", pid=1, credits=2, now=0.0)
    for _ in range(1000):
        dispatcher.done(b"w", "cam", -1, now=0.0)  # acknowledgements of frames it never had
    assert dispatcher.workers[b"w"].credits == 2


def test_acknowledgements_after_a_capture_restart_still_free_the_worker():
    """A new capture learns a busy worker from its heartbeat (0 free); its acks of older frames return credits."""
    dispatcher: Dispatcher[str] = Dispatcher(worker_timeout=3.0, on_lost=lambda *a: None, max_credits=2)
    dispatcher.heartbeat(b"w", pid=1, free_credits=0, now=0.0)
    dispatcher.done(b"w", "cam", 10, now=0.1)
    dispatcher.done(b"w", "cam", 11, now=0.2)
    dispatcher.done(b"w", "cam", 12, now=0.3)
    assert dispatcher.workers[b"w"].credits == 2
    dispatcher.assign(b"w", "cam", 13, "frame")
    assert dispatcher.done(b"w", "cam", 13, now=0.4) == "frame"
    assert dispatcher.workers[b"w"].credits == 2
