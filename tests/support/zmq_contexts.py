"""Finds ZeroMQ contexts and sockets a test leaves open in the test process.

pyzmq keeps no registry of contexts, so ``zmq.Context.__init__`` is wrapped while a test runs to note every
context it creates. After the test, each must be closed (``term()``, ``destroy()`` or a ``with`` block).

The process-wide singleton (``zmq.Context.instance()``, which library code such as ``bus.context()`` and a
``Subscription`` without ``ctx`` use) is meant to live as long as the process, so it may stay open across tests;
but every socket made on it must be closed by the end of the test that made it.
"""

from __future__ import annotations

import threading
from typing import Any

import zmq


class ContextTracker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._created: list[zmq.Context] = []  # strong references: a leaked context cannot be collected unseen
        self._original_init: Any = None
        self._singleton_sockets: set[int] = set()

    def start(self) -> None:
        original = zmq.Context.__init__
        tracker = self

        def tracking_init(ctx: zmq.Context, *args: Any, **kwargs: Any) -> None:
            original(ctx, *args, **kwargs)
            if not getattr(ctx, "_shadow", False):  # a shadow wraps a context owned elsewhere
                with tracker._lock:
                    tracker._created.append(ctx)

        self._original_init = original
        zmq.Context.__init__ = tracking_init  # type: ignore[method-assign]
        singleton = zmq.Context._instance
        if singleton is not None and not singleton.closed:
            self._singleton_sockets = {id(s) for s in list(singleton._sockets) if not s.closed}

    def stop(self) -> list[str]:
        """Restore ``zmq.Context.__init__``; return what was left open (and close it, so one leak is one failure)."""
        zmq.Context.__init__ = self._original_init  # type: ignore[method-assign]
        leaks = []
        singleton = zmq.Context._instance
        with self._lock:
            created, self._created = self._created, []
        for ctx in created:
            if ctx.closed:
                continue
            if ctx is singleton:
                continue  # checked below, by its sockets
            open_sockets = [s for s in list(ctx._sockets) if not s.closed]
            leaks.append(f"a zmq.Context with {len(open_sockets)} open socket(s) was never closed")
            ctx.destroy(linger=0)
        if singleton is not None and not singleton.closed:
            left = [s for s in list(singleton._sockets)
                    if not s.closed and id(s) not in self._singleton_sockets]
            for sock in left:
                leaks.append(f"a {zmq.SocketType(sock.type).name} socket on zmq.Context.instance() was never closed")
                sock.close(linger=0)
        return leaks
