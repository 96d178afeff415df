"""The console's one handle on the history database: a read-only reader opened once per application, a read-write
store opened on the first marker, and the queries run off the event loop.

Until the history writer has made the database, the reader is not there and every list is empty (a console started
before its daemon, or with history off, answers, never 500). A database that cannot be used (PostgreSQL down, a
foreign file) is a 503 with the store's one-line reason. The console never writes SQL: it calls
``emotiond.clients.history.queries`` and ``markers``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc

from emotiond.clients.history.schema import HistoryError
from emotiond.clients.history.store import (
    HistoryReader,
    HistoryStore,
    HistoryUnavailableError,
    database_url,
    describe_error,
)
from emotiond.core.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


class HistoryDownError(Exception):
    """The database is there but cannot be used now: a 503 with this one line."""


class HistoryAccess:
    def __init__(self, settings: Settings):
        self.url = database_url(settings.history)
        self._lock = threading.Lock()
        self._reader: HistoryReader | None = None
        self._store: HistoryStore | None = None

    # ------------------------------------------------------------ opening
    def _absent(self) -> bool:
        """Whether the database is simply not made yet: a SQLite file that does not exist or is empty (a stat, so
        a console without a database looks again at each request for nothing)."""
        if self.url.get_backend_name() != "sqlite":
            return False
        try:
            return Path(self.url.database or "").stat().st_size == 0
        except FileNotFoundError:
            return True
        except OSError:
            return False  # opening it says why

    def reader(self) -> HistoryReader | None:
        """The reader, opened on first use and kept; None while there is no database yet."""
        with self._lock:
            if self._reader is not None:
                return self._reader
            if self._absent():
                return None
            try:
                self._reader = HistoryReader(self.url)
            except HistoryUnavailableError as error:
                raise HistoryDownError(str(error)) from None
            except HistoryError as error:
                if str(error).startswith("no history"):  # a PostgreSQL database the writer has not set up yet
                    return None
                raise HistoryDownError(str(error)) from None
            log.info("web console reads the history in %s", self._reader.where)
            return self._reader

    def store(self) -> HistoryStore:
        """The read-write handle for markers, opened on the first one (it makes the database if need be)."""
        with self._lock:
            if self._store is None:
                try:
                    self._store = HistoryStore(self.url)
                except HistoryError as error:
                    raise HistoryDownError(str(error)) from None
            return self._store

    # ------------------------------------------------------------ running queries
    async def read(self, query: Callable[..., T], empty: Callable[[], T], **arguments: Any) -> T:
        """``query(reader, **arguments)`` in a worker thread, or ``empty()`` while there is no database."""
        def work() -> T:
            reader = self.reader()
            if reader is None:
                return empty()
            return _translated(lambda: query(reader, **arguments))

        return await asyncio.get_running_loop().run_in_executor(None, work)

    async def write(self, change: Callable[..., T], **arguments: Any) -> T:
        """``change(store, **arguments)`` in a worker thread."""
        def work() -> T:
            store = self.store()
            return _translated(lambda: change(store, **arguments))

        return await asyncio.get_running_loop().run_in_executor(None, work)

    def close(self) -> None:
        with self._lock:
            for handle in (self._reader, self._store):
                if handle is not None:
                    handle.close()
            self._reader = self._store = None


def _translated(call: Callable[[], T]) -> T:
    """Database failures while running (a server gone, a locked or full disk) as ``HistoryDownError``."""
    try:
        return call()
    except HistoryUnavailableError as error:
        raise HistoryDownError(str(error)) from None
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as error:
        raise HistoryDownError(f"history database: {describe_error(error)}") from None
