"""The console's side of the results bus: one subscription to results and status of every camera, one to the
frames of the cameras someone watches, and the fan-out to browsers.

Both subscriptions are read through ``Subscription`` on a short timer in the server's event loop, so every
piece of state lives on one thread. Frames are subscribed per camera, only while the camera has a viewer or
a recent ``latest.jpg`` caller; workers then publish ``frame.<camera>``, and stop when the subscription goes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

import zmq

from emotiond.clients.changes import ChangeDetector
from emotiond.clients.privacy.retention import max_age_seconds
from emotiond.clients.subscribe import Subscription
from emotiond.clients.web.feeds import CameraFeed
from emotiond.clients.web.outbox import ViewerOutbox
from emotiond.clients.web.ring import EventRing
from emotiond.core import protocol
from emotiond.core.settings import Settings

log = logging.getLogger(__name__)
POLL_SECONDS = 0.01  # bus poll interval when nothing is waiting
WS_TOPICS = ("result", "event", "status", "message")


class StreamLimitError(Exception):
    """More concurrent streams than ``[web] max_streams``."""


class Hub:
    def __init__(self, settings: Settings, endpoint: str, messages: Mapping[str, Sequence[str]],
                 executor: Executor):
        self.settings = settings
        self.endpoint = endpoint
        self.started_at = time.monotonic()
        self.ring = EventRing(settings.web.events_ring, max_age_seconds(settings))
        self.feeds: dict[str, CameraFeed] = {}
        self.bad_messages: collections.Counter[str] = collections.Counter()
        self.results_received = 0
        self.frames_received = 0
        self.streams = 0
        self._messages = messages
        self._executor = executor
        self._changes = ChangeDetector()
        self._clients: dict[ViewerOutbox, frozenset[str]] = {}
        self._ctx = zmq.Context()
        self._results = Subscription(endpoint, (), kinds=("result", "status", "tracks"), settings=settings,
                                     ctx=self._ctx, on_bad=self._count_bad)
        self._frames: Subscription | None = None
        self._frame_cameras: tuple[str, ...] = ()
        self._stopping = asyncio.Event()
        for source in settings.sources:
            self.feed(source.name, create=True)

    # ------------------------------------------------------------ cameras
    def feed(self, name: str, create: bool = False) -> CameraFeed | None:
        feed = self.feeds.get(name)
        if feed is None and create:
            feed = CameraFeed(name, self._messages, self._executor, quality=self.settings.web.jpeg_quality,
                              on_watch_change=self.update_watch)
            self.feeds[name] = feed
        return feed

    def update_watch(self) -> None:
        """Subscribe to the frames of exactly the watched cameras (none: no frame subscription at all)."""
        now = time.monotonic()
        watched = tuple(sorted(name for name, feed in self.feeds.items() if feed.watched(now)))
        if watched == self._frame_cameras:
            return
        log.info("frames subscribed for %s", ", ".join(watched) or "no camera")
        self._frame_cameras = watched
        if not watched:
            if self._frames is not None:
                self._frames.close()
                self._frames = None
        elif self._frames is None:
            self._frames = Subscription(self.endpoint, watched, kinds=("frame",), settings=self.settings,
                                        ctx=self._ctx, on_bad=self._count_bad)
        else:
            self._frames.set_cameras(watched)

    @property
    def frame_cameras(self) -> tuple[str, ...]:
        return self._frame_cameras

    # ------------------------------------------------------------ clients
    def open_stream(self) -> None:
        if self.streams >= self.settings.web.max_streams:
            raise StreamLimitError(f"{self.streams} streams open, the limit ([web] max_streams)")
        self.streams += 1

    def close_stream(self) -> None:
        self.streams = max(0, self.streams - 1)

    def add_client(self, outbox: ViewerOutbox, topics: frozenset[str] = frozenset(WS_TOPICS)) -> None:
        self._clients[outbox] = topics

    def set_client_topics(self, outbox: ViewerOutbox, topics: frozenset[str]) -> None:
        if outbox in self._clients:
            self._clients[outbox] = topics

    def remove_client(self, outbox: ViewerOutbox) -> None:
        self._clients.pop(outbox, None)

    def _broadcast(self, topic: str, payload: dict[str, Any]) -> dict[str, Any]:
        item = {"topic": topic, "payload": payload}
        text: str | None = None
        for outbox, topics in self._clients.items():
            if topic in topics:
                text = text or json.dumps(item, separators=(",", ":"))
                outbox.offer_text(text)
        return item

    # ------------------------------------------------------------ the bus
    def _count_bad(self, error: protocol.ProtocolError) -> None:
        self.bad_messages[error.reason] += 1

    async def run(self) -> None:
        """Read the bus until ``stop()``."""
        while not self._stopping.is_set():
            busy = self.poll(time.monotonic())
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), POLL_SECONDS)
            else:
                await asyncio.sleep(0)

    def poll(self, now: float) -> bool:
        """Handle what is waiting on both subscriptions; True if anything was."""
        messages = self._results.receive(0)
        for message in messages:
            if isinstance(message, protocol.Result):
                self._on_result(message, now)
            elif isinstance(message, protocol.Status):
                self._on_status(message)
            elif isinstance(message, protocol.TracksEnded):
                self._on_tracks_ended(message)
        frames = self._frames.receive(0) if self._frames is not None else []
        for frame in frames:
            if isinstance(frame, protocol.Frame):
                feed = self.feeds.get(frame.header.camera)
                if feed is not None and feed.watched(now):
                    self.frames_received += 1
                    feed.on_frame(frame, now)
        expired = [feed.name for feed in list(self.feeds.values()) if feed.expire(now)]
        if expired:
            self.update_watch()
        return bool(messages or frames)

    def _on_result(self, result: protocol.Result, now: float) -> None:
        self.results_received += 1
        feed = self.feed(result.camera, create=True)
        assert feed is not None
        message_before = (feed.emotion, feed.message)
        feed.on_result(result, now)
        self.ring.add_result(result, self._broadcast("result", result.to_dict()))
        for event in self._changes.feed(result):
            self.ring.add_event(event, self._broadcast("event", event))
        if (feed.emotion, feed.message) != message_before:
            self._broadcast("message", {"camera": feed.name, "emotion": feed.emotion, "text": feed.message})

    def _on_tracks_ended(self, message: protocol.TracksEnded) -> None:
        """The camera stopped producing frames: its open tracks disappear from the events list too."""
        for event in self._changes.feed(message):
            self.ring.add_event(event, self._broadcast("event", event))

    def _on_status(self, status: protocol.Status) -> None:
        feed = self.feed(status.camera, create=True)
        assert feed is not None
        feed.on_status(status)
        self._broadcast("status", status.to_dict())

    def stop(self) -> None:
        self._stopping.set()

    def close(self) -> None:
        for outbox in list(self._clients):
            outbox.close()
        self._results.close()
        if self._frames is not None:
            self._frames.close()
        self._ctx.term()
