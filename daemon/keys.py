"""``emotiond keys generate``: CURVE certificates for tcp endpoints beyond this host (see core/security.py)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from emotiond.core.errors import UsageError

SERVER_NAME = "server"
AUTHORIZED_DIR = "authorized"


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
