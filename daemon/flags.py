"""The flags commands share, and the one way from a config file, the environment and flags to Settings.

Each flag is declared once, as a ``Flag`` that names the dotted settings key it sets (``workers.count``), or no
key when the command reads it itself (``--connect``). Flags come in groups, and a command names the groups it
uses (``add_command``). A flag that sets a key is stored under the dest ``setting:<key>``, which no command's own
flag can take, so ``settings_from_args`` reads exactly the keys the running command's flags map, and nothing else:
``analyze --workers`` (its own engine processes) and ``log --metrics-port`` (the logger's own /metrics) never
reach ``workers.count`` or ``metrics.port``.

Only argparse at import time: every command module imports this one to build its parser.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emotiond.core.settings import Settings

CONFIG_ENV = "EMOTIOND_CONFIG"
SETTING = "setting:"        # dest prefix of the flags that set a settings key
EACH_SOURCE = "sources.*."  # keys that apply to every source given with --source


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


class Flag:
    """One flag: its argparse options, and the dotted settings key it sets (None: the command reads it itself).

    A flag with a key has no default of its own (None: not given), so a flag left out keeps the value of the
    config file or the environment; its help ends with the key it sets.
    """

    def __init__(self, name: str, key: str | None, help: str, **options: Any):
        if key is not None and options.get("default") is not None:
            raise ValueError(f"{name}: a flag that sets {key} takes its default from the settings")
        self.name, self.key, self.help, self.options = name, key, help, options

    @property
    def dest(self) -> str:
        if self.key is not None:
            return SETTING + self.key
        return self.options.get("dest") or self.name.lstrip("-").replace("-", "_")

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        options = dict(self.options)
        if self.key is not None:
            options.update(dest=self.dest, default=None)
            if "choices" not in options and options.get("action", "store") in ("store", "append"):
                options.setdefault("metavar", self.name.lstrip("-").upper().replace("-", "_"))
        parser.add_argument(self.name, help=f"{self.help}; sets {self.key}" if self.key else self.help, **options)

    def value(self, args: argparse.Namespace) -> Any:
        """What the running command got for this flag (None when it does not have the flag or it was not given)."""
        return vars(args).get(self.dest)


@dataclass(frozen=True)
class FlagGroup:
    name: str
    flags: tuple[Flag, ...]

    @property
    def keys(self) -> dict[str, str]:
        """Flag name -> the settings key it sets, for the flags of this group that set one."""
        return {flag.name: flag.key for flag in self.flags if flag.key is not None}

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        for flag in self.flags:
            flag.add_to(parser)

    def argv(self, args: argparse.Namespace) -> list[str]:
        """The flags of this group that were given, as command-line arguments again (for another parser)."""
        argv: list[str] = []
        for flag in self.flags:
            value = flag.value(args)
            for item in value if isinstance(value, list) else [value]:
                if item is True:
                    argv.append(flag.name)
                elif item is not None and item is not False:
                    argv += [flag.name, str(item)]
        return argv


def add_command(commands: argparse._SubParsersAction, name: str, handler: Callable[[argparse.Namespace], int],
                groups: Sequence[FlagGroup] = (), **parser_options: Any) -> argparse.ArgumentParser:
    """A subcommand with the flags of ``groups``; the caller adds the command's own flags to what it returns."""
    parser = commands.add_parser(name, **parser_options)
    for group in groups:
        group.add_to(parser)
    parser.set_defaults(handler=handler)
    return parser


# ---------------------------------------------------------------- the flags, each declared once

LOG_LEVEL = Flag("--log-level", "logging.level", "log level (default: from config, INFO)",
                 choices=["DEBUG", "INFO", "WARNING", "ERROR"])
CONFIG_FILE = Flag("--config", None, f"TOML config file (default: ${CONFIG_ENV} if set)", type=Path, default=None)
CONNECT = Flag("--connect", None, "results endpoint (default: the local daemon's)", default=None)
RUNTIME_DIR = Flag("--runtime-dir", "bus.runtime_dir", "runtime folder of the daemon, for its ipc sockets",
                   type=Path)
OWN_METRICS_PORT = Flag("--metrics-port", None, "serve /metrics on this port (0: any free)", type=int, default=None)
OWN_METRICS_HOST = Flag("--metrics-host", None, "bind address of /metrics", default="127.0.0.1")
MODEL = Flag("--model", "classifier.model", "model bundle folder or name in the models cache")
BACKEND = Flag("--backend", "classifier.backend", "classifier backend", choices=["litert", "tf"])
DETECTOR = Flag("--detector", "detection.backend",
                "face detector (default: haar; blazeface finds tilted and small faces)", choices=["haar", "blazeface"])
WORKERS = Flag("--workers", "workers.count", "inference worker processes (0: one per core)", type=int)
METRICS_PORT = Flag("--metrics-port", "metrics.port", "port of the daemon's /metrics (0: any free port)", type=int)
SOURCE = Flag("--source", "sources", "webcam index or /dev/videoN, video file, image folder, rtsp:// or http(s):// "
              "URL, or 'demo'; repeat for several cameras (named cam0, cam1, ... by default)",
              action="append", metavar="[NAME=]URL")
REALTIME = Flag("--realtime", EACH_SOURCE + "realtime",
                "pace files at their own fps and drop stale frames like a live source", action="store_true")
LOOP = Flag("--loop", EACH_SOURCE + "loop", "restart files at their end", action="store_true")
MODE = Flag("--mode", EACH_SOURCE + "mode", "frame handling for the --source flags (default: auto)",
            choices=["auto", "live", "file"])

GLOBAL = FlagGroup("global", (LOG_LEVEL,))
CONFIG = FlagGroup("config file", (CONFIG_FILE,))
CONNECTION = FlagGroup("connection", (CONNECT, RUNTIME_DIR))
OWN_METRICS = FlagGroup("own metrics", (OWN_METRICS_PORT, OWN_METRICS_HOST))
PIPELINE = FlagGroup("pipeline", (MODEL, BACKEND, DETECTOR))
DAEMON = FlagGroup("daemon", (WORKERS, METRICS_PORT, RUNTIME_DIR))
SOURCES = FlagGroup("sources", (SOURCE, REALTIME, LOOP, MODE))


# ---------------------------------------------------------------- settings from flags

def settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the given flags set, nested (``{"workers": {"count": 2}}``); flags not given set nothing."""
    from emotiond.core.settings import nest_dotted, parse_source_flag

    given = {dest.removeprefix(SETTING): value for dest, value in vars(args).items()
             if dest.startswith(SETTING) and value is not None}
    each_source = {key.removeprefix(EACH_SOURCE): given.pop(key) for key in list(given) if key.startswith(EACH_SOURCE)}
    overrides = nest_dotted(given)
    if "sources" in overrides:
        overrides["sources"] = [{**parse_source_flag(text, index), **each_source}
                                for index, text in enumerate(overrides["sources"])]
    return overrides


def config_file(args: argparse.Namespace) -> Path | None:
    """``--config``, else ``$EMOTIOND_CONFIG``, else none."""
    return CONFIG_FILE.value(args) or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Defaults < config file < environment < the command's flags; bad values raise ConfigError, one line per key."""
    from emotiond.core.lifecycle import configure_logging
    from emotiond.core.settings import load_settings

    settings = load_settings(config_file(args), settings_overrides(args))
    configure_logging(settings.logging.level)
    return settings
