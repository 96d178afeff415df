"""Opening the history database: one SQLAlchemy Core engine for SQLite (WAL) or PostgreSQL, read-write or read-only.

``HistoryStore`` is the read-write handle: the writer process, and the few writes made elsewhere (markers,
forget). It creates the schema when the database is new and refuses a foreign or newer one in one line, leaving it
untouched. ``HistoryReader`` is read-only: SQLite through a ``mode=ro`` URI, PostgreSQL with
``default_transaction_read_only``; queries take either.

SQLite: WAL lets readers work while the one writer commits; ``synchronous = NORMAL`` keeps every committed batch
across a killed process; writes begin with ``BEGIN IMMEDIATE`` so two writers queue on the busy timeout instead of
failing when one upgrades a read. WAL needs shared memory between processes, so a file on NFS or SMB gets a
warning (SQLite's own advice: same host only).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.pool import QueuePool

from emotiond.clients.history import schema
from emotiond.clients.history.schema import HistoryError
from emotiond.core.settings import HistorySettings, Settings

log = logging.getLogger(__name__)
BUSY_TIMEOUT_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 5
NETWORK_FILESYSTEMS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs", "fuse.sshfs"}
WRITE_OPTION = "history_write"  # execution option of the connections HistoryStore.begin() hands out
PG_LOCK_KEY = schema.APPLICATION_ID  # advisory lock held while a PostgreSQL schema is created


class HistoryUnavailableError(HistoryError):
    """The database cannot be reached or written right now (PostgreSQL down, disk full); worth retrying."""


def database_url(history: HistorySettings) -> URL:
    """The SQLAlchemy URL of ``[history] url``: empty is the state folder's SQLite file, a plain path is a SQLite
    file, postgresql:// goes through psycopg 3."""
    configured = history.url.strip()
    if not configured:
        return URL.create("sqlite", database=str(history.default_path()))
    if "://" not in configured:
        return URL.create("sqlite", database=str(Path(configured).expanduser()))
    url = make_url(configured)
    if url.get_backend_name() in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    return url


def network_filesystem(path: Path, mounts: Path = Path("/proc/mounts")) -> str | None:
    """The file system type of ``path``'s mount when it is a network one (nfs, cifs, ...), else None."""
    try:
        lines = mounts.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    target = str(path.resolve())
    best, kind = "", ""
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind if kind in NETWORK_FILESYSTEMS else None


def _warn_if_networked(path: Path) -> None:
    kind = network_filesystem(path.parent if not path.exists() else path)
    if kind:
        log.warning("history database %s is on a network file system (%s): SQLite's WAL needs shared memory on "
                    "one host, so readers on other hosts may see corrupt data and locking may fail; keep it on a "
                    "local disk, or use PostgreSQL ([history] url)", path, kind)


class HistoryReader:
    """A read-only handle on the history; ``connect()`` gives a SQLAlchemy Connection for queries."""

    read_only = True

    def __init__(self, url: URL | str):
        self.url = make_url(url) if isinstance(url, str) else url
        self.dialect = "sqlite" if self.url.get_backend_name() == "sqlite" else "postgresql"
        self.path: Path | None = Path(self.url.database or "") if self.dialect == "sqlite" else None
        if self.dialect == "sqlite" and (not self.url.database or self.url.database == ":memory:"):
            raise HistoryError("the history needs a SQLite file path, not an in-memory database")
        self.where = str(self.path) if self.path else self.url.render_as_string(hide_password=True)
        self.engine: Engine = self._engine()
        self._open()

    # ------------------------------------------------------------ engines
    def _engine(self) -> Engine:
        if self.dialect == "sqlite":
            assert self.path is not None
            return create_engine("sqlite+pysqlite://", creator=self._sqlite_connection, poolclass=QueuePool,
                                 pool_size=2, max_overflow=4)
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise HistoryError("a PostgreSQL history needs psycopg: pip install 'emotiond[postgres]'") from None
        options = "-c default_transaction_read_only=on" if self.read_only else ""
        connect_args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS, "application_name": "emotiond"}
        if options:
            connect_args["options"] = options
        return create_engine(self.url, pool_pre_ping=True, pool_size=2, max_overflow=4, connect_args=connect_args)

    def _sqlite_connection(self) -> sqlite3.Connection:
        assert self.path is not None
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        connection = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        return connection

    def _open(self) -> None:
        """Check the database is there and ours; a reader never creates anything."""
        if self.path is not None:
            if not schema.check_sqlite_file(self.path):
                raise HistoryError(f"no history at {self.path} yet (the history writer creates it: `emotiond run` "
                                   "with [history] enabled)")
            _warn_if_networked(self.path)
            return
        with self._translated(), self.engine.connect() as connection:
            if not schema.check_database(connection, self.where):
                raise HistoryError(f"no history in {self.where} yet (the history writer creates it)")

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Unreachable servers and full disks as ``HistoryUnavailableError``, one line each."""
        try:
            yield
        except exc.OperationalError as error:
            raise HistoryUnavailableError(f"history database {self.where}: {describe_error(error)}") from None

    # ------------------------------------------------------------ use
    def connect(self) -> Connection:
        """A connection from the pool (use it as a context manager)."""
        return self.engine.connect()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> HistoryReader:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.where})"


class HistoryStore(HistoryReader):
    """The read-write handle. ``prepare`` (run at once unless ``prepare=False``) checks and creates the schema;
    the writer defers it so that a PostgreSQL server that is down is waited for rather than fatal."""

    read_only = False

    def __init__(self, url: URL | str, *, prepare: bool = True):
        self.prepared = False
        self._want_prepare = prepare
        super().__init__(url)

    def _open(self) -> None:
        if self.path is not None:
            schema.check_sqlite_file(self.path)  # refuses a foreign or newer file before anything touches it
            _warn_if_networked(self.path)
        if self._want_prepare:
            self.prepare()

    def _sqlite_connection(self) -> sqlite3.Connection:
        assert self.path is not None
        connection = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False,
                                     isolation_level=None)  # transactions are begun by the engine (BEGIN IMMEDIATE)
        connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("PRAGMA foreign_keys = ON")
        return connection

    def _engine(self) -> Engine:
        engine = super()._engine()
        if self.dialect == "sqlite":
            event.listen(engine, "begin", _sqlite_begin)
        return engine

    def prepare(self) -> None:
        """Check the database is ours (or empty) and create what is missing. Raises ``HistoryError`` for a foreign
        or newer database, ``HistoryUnavailableError`` when it cannot be reached or written."""
        if self.prepared:
            return
        if self.path is not None and not schema.check_sqlite_file(self.path):
            self._create_sqlite_file()
        with self._translated(), self.begin() as connection:
            if self.dialect == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_LOCK_KEY})")
            schema.check_database(connection, self.where)
            schema.create_schema(connection)
        self.prepared = True

    def _create_sqlite_file(self) -> None:
        """A new file: its folder private to the user, and incremental auto-vacuum set before the first table (so
        the size cap can hand purged pages back to the file system)."""
        assert self.path is not None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as error:
            raise HistoryError(f"cannot create the history folder {self.path.parent}: {error.strerror}") from None
        try:
            connection = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
            try:
                connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
                connection.execute("PRAGMA journal_mode = WAL")
            finally:
                connection.close()
        except sqlite3.OperationalError as error:
            raise HistoryUnavailableError(f"history database {self.path}: {error}") from None

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in a write transaction, committed when the block ends (rolled back on an exception). On
        SQLite it takes the write lock at once (``BEGIN IMMEDIATE``); ``connect()`` stays a plain read."""
        with self.engine.connect() as connection:
            connection.execution_options(**{WRITE_OPTION: True})
            with connection.begin():
                yield connection


def _sqlite_begin(connection: Connection) -> None:
    """pysqlite runs in autocommit mode here, so the engine begins every transaction itself: writes take the lock
    up front (two writers then queue on the busy timeout instead of failing on a lock upgrade), reads do not."""
    write = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def describe_error(error: BaseException) -> str:
    """The first line of a database error, without SQL or parameters."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()
    return text[0] if text else type(original).__name__


def open_reader(settings: Settings) -> HistoryReader:
    return HistoryReader(database_url(settings.history))


def open_store(settings: Settings, *, prepare: bool = True) -> HistoryStore:
    return HistoryStore(database_url(settings.history), prepare=prepare)
