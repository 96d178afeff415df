"""The console's users: names and salted scrypt hashes in one JSON file of mode 0600 in the state folder.

Writes replace the file atomically under a lock, so two ``emotiond web users`` commands cannot lose each other's
change; readers re-read it when it changes, so a running console sees a user added or removed at once. A password
is never stored, logged or printed: only its hash, with the salt and the scrypt cost that made it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emotiond.core.errors import UsageError

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
# scrypt at N=2**14, r=8, p=1 costs 16 MiB and some tens of milliseconds per check: slow for a guesser with a
# stolen file, cheap for a console that checks a login now and then (the login limit bounds how often).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SCRYPT_MAXMEM = 64 * 1024 * 1024
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
TOKEN_USER = "token"  # the name the log gives requests made with [web] token; no user may take it
MIN_PASSWORD, MAX_PASSWORD = 8, 1024


class UsersError(UsageError):
    """A bad user name or password, an unknown user, or an unreadable users file."""


def check_name(name: str) -> str:
    if not NAME_RE.match(name) or name == TOKEN_USER:
        raise UsersError(f"bad user name {name[:70]!r}: 1 to 64 letters, digits, '_', '.', '@' or '-', "
                         f"starting with a letter or digit (and not {TOKEN_USER!r})")
    return name


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD or not password.isprintable():
        raise UsersError(f"a password must be {MIN_PASSWORD} to {MAX_PASSWORD} printable characters")
    return password


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=SCRYPT_MAXMEM, dklen=32)


def hash_password(password: str) -> dict[str, Any]:
    salt = secrets.token_bytes(16)
    return {"scrypt": {"n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P}, "salt": salt.hex(),
            "hash": _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P).hex()}


def password_matches(record: dict[str, Any], password: str) -> bool:
    try:
        cost = record["scrypt"]
        derived = _scrypt(password, bytes.fromhex(record["salt"]), int(cost["n"]), int(cost["r"]), int(cost["p"]))
        return hmac.compare_digest(derived, bytes.fromhex(record["hash"]))
    except (KeyError, TypeError, ValueError):
        return False


_DUMMY = hash_password(secrets.token_urlsafe(16))  # checked for unknown names, so they cost as much as known ones


class UserStore:
    def __init__(self, path: Path):
        self.path = path
        self._cache_key: tuple[int, int, int] | None = None
        self._users: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------ reading
    def users(self) -> dict[str, dict[str, Any]]:
        """Every user's record, re-read when the file changed; {} when there is no file."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            self._cache_key, self._users = None, {}
            return {}
        key = (info.st_mtime_ns, info.st_size, info.st_ino)
        if key != self._cache_key:
            self._users = self._read()
            self._cache_key = key
        return self._users

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            users = data["users"]
            if data.get("version") != FORMAT_VERSION or not isinstance(users, dict):
                raise ValueError("unknown format")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsersError(f"users file {self.path} is unreadable: {exc}") from None
        return users

    def names(self) -> list[str]:
        return sorted(self.users())

    def exists(self, name: str) -> bool:
        return name in self.users()

    def check(self, name: str, password: str) -> bool:
        """Whether ``password`` is ``name``'s. Unknown names cost one scrypt too, so timing does not tell."""
        record = self.users().get(name)
        matches = password_matches(record or _DUMMY, password[:MAX_PASSWORD])
        return record is not None and matches

    # ------------------------------------------------------------ changing
    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, Any]]]:
        """The users, to change in place and write back atomically, with the file locked meanwhile."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600), "r+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            users = dict(self._read()) if self.path.exists() else {}
            yield users
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as out:
                json.dump({"version": FORMAT_VERSION, "users": users}, out, indent=1, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
            self.path.chmod(0o600)

    def add(self, name: str, password: str) -> None:
        check_name(name)
        check_password(password)
        with self._locked() as users:
            if name in users:
                raise UsersError(f"user {name!r} exists already (emotiond web users passwd {name} changes the "
                                 "password)")
            users[name] = {**hash_password(password), "created": round(time.time())}
        log.info("web user %s added", name)

    def set_password(self, name: str, password: str) -> None:
        check_password(password)
        with self._locked() as users:
            if name not in users:
                raise UsersError(f"no user {name[:70]!r}")
            users[name] = {**users[name], **hash_password(password), "changed": round(time.time())}
        log.info("web user %s: password changed", name)

    def remove(self, name: str) -> None:
        with self._locked() as users:
            if users.pop(name, None) is None:
                raise UsersError(f"no user {name[:70]!r}")
        log.info("web user %s removed", name)
