"""The Python API for programs that consume emotiond results.

    from emotiond.clients.subscribe import subscribe
    for result in subscribe(cameras=["cam0"], timeout=10):
        print(result.camera, result.seq, [f.emotion for f in result.faces])
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator

import zmq

from emotiond.daemon.core import bus, protocol
from emotiond.daemon.core.settings import Settings

log = logging.getLogger(__name__)


def subscribe(endpoint: str | None = None, cameras: Iterable[str] | None = None, *,
              settings: Settings | None = None, include_status: bool = False,
              timeout: float | None = None, idle_timeout: float | None = None,
              ) -> Iterator[protocol.Result | protocol.Status]:
    """Yield results (and status events if asked) as they are published.

    ``timeout`` bounds the whole iteration; ``idle_timeout`` ends it after that long without a message.
    Malformed messages are logged and skipped.
    """
    settings = settings or Settings()
    endpoint = endpoint or settings.endpoint("results")
    names = list(cameras or [])
    prefixes = [protocol.RESULT_PREFIX + n.encode() for n in names] or [protocol.RESULT_PREFIX]
    if include_status:
        prefixes += [protocol.STATUS_PREFIX + n.encode() for n in names] or [protocol.STATUS_PREFIX]
    sock = bus.results_subscriber(endpoint, prefixes, settings)
    deadline = time.monotonic() + timeout if timeout else None
    last_message = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return
            if idle_timeout is not None and now - last_message >= idle_timeout:
                return
            wait = 1.0 if deadline is None else min(1.0, deadline - now)
            if not sock.poll(max(1, int(wait * 1000))):
                continue
            parts = sock.recv_multipart(zmq.NOBLOCK)
            last_message = time.monotonic()
            try:
                message = protocol.decode(parts, settings.bus.max_frame_pixels)
            except protocol.ProtocolError as exc:
                log.warning("skipping malformed message: %s", exc)
                continue
            if names and isinstance(message, protocol.Result | protocol.Status) and message.camera not in names:
                continue  # topic prefixes also match longer camera names
            if isinstance(message, protocol.Result | protocol.Status):
                yield message
    finally:
        sock.close(linger=0)
