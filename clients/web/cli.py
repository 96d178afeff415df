"""``emotiond web``: the console as its own process, beside a running daemon; ``emotiond web users``: who may log
in to it."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from emotiond.core.errors import UsageError
from emotiond.daemon.flags import (
    CONFIG,
    CONNECTION,
    Flag,
    FlagGroup,
    add_command,
    config_file,
    settings_from_args,
    settings_overrides,
)

SERVE = FlagGroup("web", (
    Flag("--host", "web.host", "bind address (default: [web] host, 127.0.0.1)"),
    Flag("--port", "web.port", "port (default: [web] port, 8108; 0: any free port)", type=int),
    Flag("--tls", "web.tls", "HTTPS (default: [web] tls, off): a self-signed certificate kept in the state "
         "folder, or [web] tls_cert_file and tls_key_file", choices=["off", "self-signed", "files"]),
))


def cmd_web(args: argparse.Namespace) -> int:
    from emotiond.clients.messages import load_messages
    from emotiond.clients.web.server import run_standalone

    return run_standalone(settings_from_args(args), args.connect, load_messages(args.messages))


def _users_path(args: argparse.Namespace) -> Path:
    """Where the users live. The checks on binding (which may need the very user being added) do not apply to
    managing users, so the bind address and TLS are left at their loopback defaults here."""
    from emotiond.core.lifecycle import configure_logging
    from emotiond.core.settings import load_settings

    overrides = settings_overrides(args)
    overrides["web"] = {**overrides.get("web", {}), "host": "127.0.0.1", "tls": "off", "allow_plain_http": False}
    settings = load_settings(config_file(args), overrides)
    configure_logging(settings.logging.level)
    return settings.web.users_path()


def _read_password(args: argparse.Namespace) -> str:
    """From the first line of standard input with --password-stdin, else asked twice on the terminal."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("--password-stdin: standard input held no password")
        return password
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password on: pipe it in with --password-stdin")
    password = getpass.getpass("password: ")
    if getpass.getpass("again: ") != password:
        raise UsageError("the two passwords differ")
    return password


def _end_sessions(users_path: Path, name: str) -> int:
    from emotiond.clients.web.sessions import SessionStore, sessions_path

    store = SessionStore(sessions_path(users_path))
    try:
        return store.end_user(name)
    finally:
        store.close()


def cmd_users(args: argparse.Namespace) -> int:
    from emotiond.clients.web.users import UserStore, check_name

    path = _users_path(args)
    store = UserStore(path)
    if args.users_command == "list":
        from emotiond.clients.web.sessions import SessionStore, sessions_path

        sessions = SessionStore(sessions_path(path))
        try:
            for name in store.names():
                print(f"{name}\t{sessions.count(name)} sessions")
        finally:
            sessions.close()
        return 0
    name = check_name(args.name) if args.users_command == "add" else args.name
    if args.users_command == "add":
        store.add(name, _read_password(args))
        print(f"added {name} to {path}")
        return 0
    if args.users_command == "passwd":
        if not store.exists(name):
            raise UsageError(f"no user {name[:70]!r} in {path}")
        store.set_password(name, _read_password(args))
        print(f"changed {name}'s password; ended {_end_sessions(path, name)} of their sessions")
        return 0
    store.remove(name)
    print(f"removed {name}; ended {_end_sessions(path, name)} of their sessions")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    web = add_command(
        commands, "web", cmd_web, (CONNECTION, CONFIG, SERVE),
        help="web console and HTTP API: live annotated cameras, events, stats, photo upload",
        description="Serve the web console and its HTTP API (MJPEG streams, latest.jpg, events, stats, photo "
                    "upload, a WebSocket of results). Binds 127.0.0.1 by default; any other address needs a user "
                    "(emotiond web users add) or [web] token, and TLS (--tls) unless [web] allow_plain_http.")
    web.add_argument("--messages", type=Path, default=None, help="messages JSON (default: config/messages.json)")
    web.set_defaults(users_command=None)
    actions = web.add_subparsers(dest="web_command", metavar="ACTION")
    users = actions.add_parser("users", help="who may log in to the console",
                               description="Manage the console's users (scrypt-hashed passwords in [web] "
                                           "users_file, mode 0600). Changing a password or removing a user ends "
                                           "their sessions.")
    users_actions = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    for action, text in (("add", "add a user"), ("passwd", "change a user's password"),
                         ("remove", "remove a user"), ("list", "list the users and their live sessions")):
        parser = users_actions.add_parser(action, help=text, description=text[0].upper() + text[1:] + ".")
        CONFIG.add_to(parser)
        if action != "list":
            parser.add_argument("name", help="user name")
        if action in ("add", "passwd"):
            parser.add_argument("--password-stdin", action="store_true",
                                help="read the password from the first line of standard input")
        parser.set_defaults(handler=cmd_users)
