"""Login sessions, kept server-side in SQLite in the state folder, so the console can end one (logout), end all of
a user's (password changed, user removed, from another process too) and keep them across its own restarts.

The cookie holds a random id (256 bits); the database holds only its SHA-256, so a copy of the database logs no one
in. A session ends ``session_hours`` after its login, whatever happens meanwhile.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import time
from pathlib import Path

SCHEMA = """CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY, user TEXT NOT NULL, created REAL NOT NULL, expires REAL NOT NULL,
    binding TEXT NOT NULL DEFAULT '')"""
MAX_SESSION_ID = 128  # a longer cookie is not one of ours: refused before hashing


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def binding_of(session_id: str, secret: str) -> str:
    """What ties a session to the secret it was opened with (the token): a new token ends the old one's sessions.
    Keyed by the session id, which the database does not hold, so it tells nothing about the secret."""
    return hmac.new(session_id.encode(), secret.encode(), hashlib.sha256).hexdigest()


def sessions_path(users_file: Path) -> Path:
    """The sessions database lives beside the users file."""
    return users_file.with_name("web-sessions.sqlite")


class SessionStore:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        self.path = path
        self._db = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(SCHEMA)

    def create(self, user: str, hours: float, secret: str | None = None) -> tuple[str, float]:
        """A new session of ``user`` (bound to ``secret`` if given): its id (for the cookie only) and when it
        expires (Unix seconds)."""
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        expires = now + hours * 3600
        binding = binding_of(session_id, secret) if secret is not None else ""
        self._db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
                         (_key(session_id), user, now, expires, binding))
        self._db.execute("DELETE FROM sessions WHERE expires <= ?", (now,))
        return session_id, expires

    def user_of(self, session_id: str, secret: str | None = None) -> str | None:
        """The user of a live session, or None (unknown, ended, expired, or bound to another secret than
        ``secret``)."""
        if not session_id or len(session_id) > MAX_SESSION_ID:
            return None
        row = self._db.execute("SELECT user, binding FROM sessions WHERE id_hash = ? AND expires > ?",
                               (_key(session_id), time.time())).fetchone()
        if row is None:
            return None
        user, binding = row
        if binding and (secret is None or not hmac.compare_digest(binding, binding_of(session_id, secret))):
            return None
        return user

    def end(self, session_id: str) -> str | None:
        """End one session; its user, or None if there was none."""
        if not session_id or len(session_id) > MAX_SESSION_ID:
            return None
        rows = self._db.execute("DELETE FROM sessions WHERE id_hash = ? RETURNING user", (_key(session_id),)).fetchall()
        return rows[0][0] if rows else None

    def end_user(self, user: str) -> int:
        """End every session of ``user``; how many there were."""
        return self._db.execute("DELETE FROM sessions WHERE user = ?", (user,)).rowcount

    def count(self, user: str | None = None) -> int:
        query, args = "SELECT COUNT(*) FROM sessions WHERE expires > ?", [time.time()]
        if user is not None:
            query, args = query + " AND user = ?", [*args, user]
        return self._db.execute(query, args).fetchone()[0]

    def close(self) -> None:
        self._db.close()
