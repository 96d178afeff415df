"""CURVE encryption and client allow-lists for tcp endpoints.

Local set-ups use ipc sockets (a private folder, mode 0600) or loopback tcp, where the operating system is the
access control. Binding tcp on any other interface exposes frames and results to the network, so it is refused
unless CURVE is configured: the binding sockets become CURVE servers, and a ZAP handler (pyzmq's
ThreadAuthenticator, one per process that binds) admits only clients whose public key is in the allow-list
folder. Connecting sockets authenticate the server by its public key. Key files are the ZeroMQ certificate
format written by ``zmq.auth.create_certificates``.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import zmq

from emotiond.core.endpoints import endpoint_host, is_exposed
from emotiond.core.errors import UsageError

if TYPE_CHECKING:
    from emotiond.core.settings import SecuritySettings, Settings

log = logging.getLogger(__name__)
ZAP_DOMAIN = "emotiond"
_authenticators: dict[int, object] = {}
_authenticators_lock = threading.Lock()


class SecurityError(UsageError):
    """A socket would be exposed without the protection its endpoint requires."""


def _load_pair(path: Path) -> tuple[bytes, bytes]:
    import zmq.auth

    public, secret = zmq.auth.load_certificate(path)
    if secret is None:
        raise SecurityError(f"{path} holds no secret key (use the .key_secret file)")
    return public, secret


def _authenticator(ctx: zmq.Context, allowed: Path) -> None:
    """Start the ZAP handler of this context once; it admits CURVE clients whose key is in ``allowed``."""
    from zmq.auth.thread import ThreadAuthenticator

    with _authenticators_lock:
        if id(ctx) in _authenticators:
            return
        auth = ThreadAuthenticator(ctx, log=logging.getLogger("emotiond.zap"))
        auth.start()
        auth.configure_curve(domain=ZAP_DOMAIN, location=str(allowed))
        _authenticators[id(ctx)] = auth
        log.info("CURVE allow-list: %d client key(s) in %s", len(list(allowed.glob("*.key"))), allowed)


def _refuse_exposed_binds(endpoints: list[str], security: SecuritySettings) -> None:
    exposed = [e for e in endpoints if is_exposed(e)]
    if exposed and not security.server_configured:
        raise SecurityError(f"refusing to bind {', '.join(exposed)} without CURVE: set security.server_secret_key "
                            "and security.authorized_keys_dir (see `emotiond keys generate`), or bind 127.0.0.1")


def check_binds(settings: Settings) -> None:
    """Refuse, before any process starts, a daemon whose bound endpoints would be exposed without CURVE."""
    _refuse_exposed_binds([settings.endpoint(role) for role in ("frames", "results_in", "results")],
                          settings.security)


def secure_server(sock: zmq.Socket, endpoint: str, settings: Settings, ctx: zmq.Context) -> None:
    """Make a socket that will bind ``endpoint`` a CURVE server when required (or configured, for tcp)."""
    security = settings.security
    if endpoint_host(endpoint) is None:
        return
    _refuse_exposed_binds([endpoint], security)
    if not security.server_configured:
        return
    assert security.server_secret_key is not None and security.authorized_keys_dir is not None
    _authenticator(ctx, security.authorized_keys_dir)
    public, secret = _load_pair(security.server_secret_key)
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
    sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())


def secure_client(sock: zmq.Socket, endpoint: str, settings: Settings) -> None:
    """Give a socket that will connect to a tcp ``endpoint`` its CURVE identity, when keys are configured."""
    security = settings.security
    if endpoint_host(endpoint) is None or not security.client_configured:
        return
    assert security.server_public_key is not None and security.client_secret_key is not None
    import zmq.auth

    server_public, _ = zmq.auth.load_certificate(security.server_public_key)
    public, secret = _load_pair(security.client_secret_key)
    sock.setsockopt(zmq.CURVE_SERVERKEY, server_public)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
