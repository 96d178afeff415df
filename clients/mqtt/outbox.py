"""What the MQTT bridge has to send, held while the broker is away.

Two stores with different rules. Retained topics (availability, discovery configs, per-camera states, snapshots)
keep only their latest value, so a long outage never grows them and a reconnect re-sends each one once, current.
Everything else (events, stats) waits in a bounded queue: when it is full the oldest message is dropped and
counted, so memory stays bounded and the newest news survives. Retained values go out before queued messages.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Outgoing:
    topic: str
    payload: bytes
    kind: str  # a topic_kind label: availability, discovery, event, state, snapshot, stats
    qos: int = 0
    retain: bool = False


class BrokerOutbox:
    """What the bridge has to publish, held while the broker is away: retained values and a bounded queue."""

    def __init__(self, capacity: int, on_drop: Callable[[Outgoing], None] | None = None):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.dropped = 0
        self._queue: deque[Outgoing] = deque()
        self._retained: dict[str, Outgoing] = {}
        self._dirty: dict[str, None] = {}  # retained topics to (re)send, in order
        self._on_drop = on_drop

    def retain(self, message: Outgoing) -> bool:
        """Set a retained topic's value; it goes out (again) only if it changed. True if it changed."""
        current = self._retained.get(message.topic)
        if current is not None and current.payload == message.payload:
            return False
        self._retained[message.topic] = message
        self._dirty[message.topic] = None
        return True

    def retained(self, topic: str) -> bytes | None:
        current = self._retained.get(topic)
        return None if current is None else current.payload

    def send(self, message: Outgoing) -> None:
        """Queue a message; when full, the oldest queued one is dropped and counted."""
        if len(self._queue) >= self.capacity:
            lost = self._queue.popleft()
            self.dropped += 1
            if self._on_drop is not None:
                self._on_drop(lost)
        self._queue.append(message)

    def resend_retained(self) -> None:
        """After a (re)connect: every retained value goes out again, in the order first set (availability first),
        since a restarted broker may have lost them."""
        self._dirty = dict.fromkeys(self._retained)

    def pop(self) -> Outgoing | None:
        if self._dirty:
            topic = next(iter(self._dirty))
            del self._dirty[topic]
            return self._retained[topic]
        return self._queue.popleft() if self._queue else None

    def put_back(self, message: Outgoing) -> None:
        """A message the link could not take (the connection dropped): first in line again."""
        if message.retain:
            if self._retained.get(message.topic) is message:
                self._dirty = {message.topic: None, **self._dirty}
        elif len(self._queue) >= self.capacity:  # it is the oldest message: the one a full queue drops
            self.dropped += 1
            if self._on_drop is not None:
                self._on_drop(message)
        else:
            self._queue.appendleft(message)

    def __len__(self) -> int:
        return len(self._dirty) + len(self._queue)

    @property
    def queued(self) -> int:
        """Non-retained messages waiting."""
        return len(self._queue)
