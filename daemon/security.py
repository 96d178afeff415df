"""CURVE encryption and client allow-lists for tcp endpoints, and ``emotiond keys generate``.

Local set-ups use ipc sockets (a private folder, mode 0600) or loopback tcp, where the operating system is the
access control. Binding tcp on any other interface exposes frames and results to the network, so it is refused
unless CURVE is configured: the binding sockets become CURVE servers, and a ZAP handler (pyzmq's
ThreadAuthenticator, one per process that binds) admits only clients whose public key is in the allow-list
folder. Connecting sockets authenticate the server by its public key. Key files are the ZeroMQ certificate
format written by ``zmq.auth.create_certificates``.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import zmq

if TYPE_CHECKING:
    from daemon.settings import SecuritySettings, Settings

log = logging.getLogger(__name__)
SERVER_NAME = "server"
AUTHORIZED_DIR = "authorized"
ZAP_DOMAIN = "emotiond"
_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}
_authenticators: dict[int, object] = {}
_authenticators_lock = threading.Lock()


class SecurityError(RuntimeError):
    """A socket would be exposed without the protection its endpoint requires."""


def endpoint_host(endpoint: str) -> str | None:
    """The host part of a tcp endpoint (``tcp://HOST:PORT``, ``tcp://[v6]:PORT``), else None."""
    if not endpoint.startswith("tcp://"):
        return None
    address = endpoint[len("tcp://"):]
    if ";" in address:  # tcp://source;destination: the destination is what matters
        address = address.split(";", 1)[1]
    host = address.rsplit(":", 1)[0]
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def is_exposed(endpoint: str) -> bool:
    """True for a tcp endpoint that is not on the loopback interface (``*``, 0.0.0.0, a LAN address, a name)."""
    host = endpoint_host(endpoint)
    if host is None:
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # '*', an interface name or a host name: reachable from elsewhere


def server_configured(security: SecuritySettings) -> bool:
    return security.server_secret_key is not None and security.authorized_keys_dir is not None


def client_configured(security: SecuritySettings) -> bool:
    return security.server_public_key is not None and security.client_secret_key is not None


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
    if exposed and not server_configured(security):
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
    if not server_configured(security):
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
    if endpoint_host(endpoint) is None or not client_configured(security):
        return
    assert security.server_public_key is not None and security.client_secret_key is not None
    import zmq.auth

    server_public, _ = zmq.auth.load_certificate(security.server_public_key)
    public, secret = _load_pair(security.client_secret_key)
    sock.setsockopt(zmq.CURVE_SERVERKEY, server_public)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)


# ---------------------------------------------------------------- emotiond keys

def generate(directory: Path, clients: list[str]) -> dict[str, Path]:
    """Write the server key pair (kept if present), one pair per client, and the allow-list of client keys."""
    import zmq.auth

    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    allowed = directory / AUTHORIZED_DIR
    allowed.mkdir(exist_ok=True, mode=0o700)
    written: dict[str, Path] = {}
    if not (directory / f"{SERVER_NAME}.key_secret").exists():
        zmq.auth.create_certificates(directory, SERVER_NAME)
    written["server_public_key"] = directory / f"{SERVER_NAME}.key"
    written["server_secret_key"] = directory / f"{SERVER_NAME}.key_secret"
    for name in clients:
        public, secret = zmq.auth.create_certificates(directory, name)
        shutil.copy(public, allowed / Path(public).name)
        written[f"client:{name}"] = Path(secret)
    for path in directory.glob("*.key_secret"):
        path.chmod(0o600)
    written["authorized_keys_dir"] = allowed
    return written


def cmd_keys_generate(args: argparse.Namespace) -> int:
    from daemon.errors import UsageError

    names = args.client or ["client"]
    if SERVER_NAME in names:
        raise UsageError(f"a client cannot be called {SERVER_NAME!r}")
    written = generate(args.dir, names)
    print(f"keys in {args.dir} (secret files are mode 0600; copy a client's .key_secret only to that client)")
    print("\n# on the daemon host:\n[security]")
    print(f'server_secret_key = "{written["server_secret_key"]}"')
    print(f'authorized_keys_dir = "{written["authorized_keys_dir"]}"')
    print(f'server_public_key = "{written["server_public_key"]}"')
    print(f'client_secret_key = "{written[f"client:{names[0]}"]}"')
    for name in names:
        print(f"\n# on a worker or subscriber host using identity {name!r}:\n[security]")
        print(f'server_public_key = "{written["server_public_key"]}"')
        print(f'client_secret_key = "{written[f"client:{name}"]}"')
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    keys = commands.add_parser("keys", help="CURVE keys for tcp endpoints beyond this host")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    generate_parser = actions.add_parser(
        "generate", help="write a server key pair, client key pairs and the allow-list folder",
        description="Create ZeroMQ CURVE certificates: server.key/server.key_secret, NAME.key/NAME.key_secret per "
                    "client, and authorized/ holding the public key of every client allowed to connect.")
    generate_parser.add_argument("--dir", type=Path, required=True, help="folder for the key files")
    generate_parser.add_argument("--client", action="append", default=None, metavar="NAME",
                                 help="client identity to create (repeatable; default: client)")
    generate_parser.set_defaults(handler=cmd_keys_generate)
