"""A throwaway PostgreSQL server for the history tests: Debian's ``postgresql`` package, one cluster per test session
(per xdist worker), one fresh database per test.

The cluster lives in its own temporary folder owned by the ``postgres`` user (the server refuses to run as root):
initdb with trust authentication, a free tcp port on 127.0.0.1 and the unix socket in that folder. Durability is
switched off (fsync, synchronous_commit): nothing here outlives the session.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from emotiond.benchmarks.harness import free_port

MISSING = "PostgreSQL is missing: `make deps` installs Debian's postgresql package"
ENGINES = ("sqlite", "postgresql")


def server_bin() -> Path | None:
    """The newest /usr/lib/postgresql/VERSION/bin holding initdb, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _as_postgres(*command: str | Path, timeout: float = 120.0) -> subprocess.CompletedProcess:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *map(str, command)], capture_output=True, text=True, timeout=timeout)


@dataclass
class PostgresServer:
    bindir: Path
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        done = _as_postgres(self.bindir / "pg_ctl", "-D", self.data, "-l", self.root / "server.log", "-w", "-t", "60",
                            "-o", options, "start")
        if done.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace")[-2000:]
            raise AssertionError(f"pg_ctl start failed: {done.stderr}\n{log}")

    def stop(self, mode: str = "fast") -> None:
        _as_postgres(self.bindir / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop")

    def admin(self, sql: str) -> None:
        """Run one statement on the maintenance database, outside a transaction (CREATE/DROP DATABASE)."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as connection:
            connection.execute(sql)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster for this session (this xdist worker), stopped and deleted at its end."""
    bindir = server_bin()
    if bindir is None:
        pytest.fail(MISSING, pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="emotiond-pg-"))  # not under pytest's root-only tmp: postgres must enter it
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        done = _as_postgres(bindir / "initdb", "-D", root / "data", "-A", "trust", "-U", "postgres", "-E", "UTF8",
                            "--locale=C", "--no-sync")
        assert done.returncode == 0, f"initdb failed: {done.stderr}"
        server = PostgresServer(bindir, root, free_port())
        server.start()
        try:
            yield server
        finally:
            server.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for one test (so tests stay independent under xdist), dropped after it."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    postgres_server.admin(f"CREATE DATABASE {name}")
    try:
        yield postgres_server.url(name)
    finally:
        with contextlib.suppress(Exception):  # a test that stopped the server leaves its database to the cluster's end
            postgres_server.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=ENGINES)
def history_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The history database of one test, once on each engine: a SQLite file in tmp_path, or a fresh PostgreSQL
    database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'history.sqlite'}"
    return request.getfixturevalue("postgres_url")
