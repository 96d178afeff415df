"""Flags to settings: each command's flags set the documented keys, and nothing else, through one function."""

from __future__ import annotations

import argparse
import os

import pytest

from emotiond.__main__ import COMMAND_MODULES
from emotiond.benchmarks import commands as bench_commands
from emotiond.core.settings import Settings, load_settings
from emotiond.daemon import cli, flags

from support.daemon import child_env, run_cli

DAEMON_KEYS = {
    "--source": "sources", "--realtime": "sources.*.realtime", "--loop": "sources.*.loop", "--mode": "sources.*.mode",
    "--workers": "workers.count", "--metrics-port": "metrics.port", "--runtime-dir": "bus.runtime_dir",
    "--model": "classifier.model", "--backend": "classifier.backend", "--detector": "detection.backend",
}
NOT_SOURCES = {"--source", "--realtime", "--loop", "--mode"}
# The flags of each command that set a settings key; every other flag is the command's own.
EXPECTED_KEYS: dict[str, dict[str, str]] = {
    "run": DAEMON_KEYS,
    "capture": DAEMON_KEYS,
    "worker": {flag: key for flag, key in DAEMON_KEYS.items() if flag not in NOT_SOURCES},
    "config show": DAEMON_KEYS,
    "config validate": {},
    "models fetch": {}, "models list": {}, "models info": {}, "models export-tflite": {},
    "models pack": {}, "models unpack": {},
    "keys generate": {},
    "events": {"--runtime-dir": "bus.runtime_dir"},
    "view": {"--runtime-dir": "bus.runtime_dir"},
    "log": {"--runtime-dir": "bus.runtime_dir"},
    "log summary": {},
    "analyze": {"--model": "classifier.model", "--backend": "classifier.backend", "--detector": "detection.backend"},
    "web": {"--runtime-dir": "bus.runtime_dir", "--host": "web.host", "--port": "web.port", "--tls": "web.tls"},
    "web users add": {}, "web users passwd": {}, "web users remove": {}, "web users list": {},
    "mqtt": {"--runtime-dir": "bus.runtime_dir", "--url": "mqtt.url"},
    **{f"history {action}": {"--db": "history.url"}
       for action in ("summary", "tracks", "track", "events", "markers", "export", "forget", "mark")},
    "privacy notice": {}, "privacy forget": {"--db": "history.url"},
    "bench": {"--workers": "workers.count", "--model": "classifier.model", "--backend": "classifier.backend"},
}
TRAINING = {"datasets check", "datasets synth", "datasets digits", "train", "tune", "evaluate", "export"}


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    return cli.build_parser(COMMAND_MODULES)


@pytest.fixture(autouse=True)
def no_config_from_the_environment(monkeypatch):
    monkeypatch.delenv(flags.CONFIG_ENV, raising=False)
    for name in [name for name in os.environ if name.startswith("EMOTIOND_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr("emotiond.core.lifecycle.configure_logging", lambda level, role=None: None)


def leaf_commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every runnable command's parser, by its words (``config show``)."""
    found = {prefix: parser} if prefix and parser.get_default("handler") else {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(leaf_commands(sub, f"{prefix} {name}".strip()))
    return found


def settings_keys(parser: argparse.ArgumentParser) -> dict[str, str]:
    return {action.option_strings[0]: action.dest.removeprefix(flags.SETTING) for action in parser._actions
            if action.dest.startswith(flags.SETTING)}


def test_each_command_maps_its_flags_to_the_documented_keys(parser):
    commands = leaf_commands(parser)
    assert set(commands) == set(EXPECTED_KEYS) | TRAINING
    for words, sub in commands.items():
        assert settings_keys(sub) == EXPECTED_KEYS.get(words, {}), words
        for action in sub._actions:
            if action.dest.startswith(flags.SETTING):  # --help names the key a flag sets
                assert action.help.endswith(f"sets {action.dest.removeprefix(flags.SETTING)}"), (words, action.help)
    assert settings_keys(parser) == {"--log-level": "logging.level"}


def test_each_group_records_the_keys_its_flags_set():
    groups = [value for value in vars(flags).values() if isinstance(value, flags.FlagGroup)]
    assert len(groups) >= 7
    for group in groups:
        alone = argparse.ArgumentParser()
        group.add_to(alone)
        assert settings_keys(alone) == group.keys, group.name


def test_given_flags_become_the_keys_they_map(parser, tmp_path):
    args = parser.parse_args([
        "--log-level", "DEBUG", "run", "--source", "door=demo", "--source", "demo", "--realtime", "--mode", "live",
        "--workers", "2", "--metrics-port", "0", "--runtime-dir", str(tmp_path), "--model", "m", "--backend", "tf",
        "--detector", "blazeface"])
    assert flags.settings_overrides(args) == {
        "logging": {"level": "DEBUG"}, "workers": {"count": 2}, "metrics": {"port": 0},
        "bus": {"runtime_dir": tmp_path}, "classifier": {"model": "m", "backend": "tf"},
        "detection": {"backend": "blazeface"},
        "sources": [{"name": "door", "url": "demo", "realtime": True, "mode": "live"},
                    {"name": "cam1", "url": "demo", "realtime": True, "mode": "live"}]}
    web = parser.parse_args(["web", "--host", "127.0.0.2", "--port", "8200", "--connect", "tcp://h:1"])
    assert flags.settings_overrides(web) == {"web": {"host": "127.0.0.2", "port": 8200}}
    mqtt = parser.parse_args(["mqtt", "--url", "mqtt://broker:1884", "--metrics-port", "9300"])
    assert flags.settings_overrides(mqtt) == {"mqtt": {"url": "mqtt://broker:1884"}}
    analyze = parser.parse_args(["analyze", "x.jpg", "--workers", "3", "--detector", "haar"])
    assert flags.settings_overrides(analyze) == {"detection": {"backend": "haar"}}
    assert analyze.workers == 3  # the engine's processes, not workers.count


@pytest.mark.parametrize("command", ["log", "mqtt"])
def test_own_metrics_port_leaves_the_daemons_metrics_port(parser, tmp_path, command):
    args = parser.parse_args([command, "--metrics-port", "0"])
    assert args.metrics_port == 0
    assert flags.settings_from_args(args).metrics.port == Settings().metrics.port == 9108
    config = tmp_path / "c.toml"
    config.write_text("[metrics]\nport = 9200\n")
    args = parser.parse_args([command, "--metrics-port", "0", "--config", str(config)])
    assert flags.settings_from_args(args).metrics.port == 9200


CONFIG = """
[workers]
count = 3
[metrics]
port = 9200
[bus]
runtime_dir = "{runtime}"
[classifier]
model = "from-file"
backend = "tf"
[detection]
backend = "blazeface"
[logging]
level = "WARNING"
[web]
host = "127.0.0.3"
port = 9001
[mqtt]
url = "mqtt://from-file:1999"
[[sources]]
name = "door"
url = "demo"
loop = true
"""
NEEDS = {"analyze": ["x.jpg"], "models info": ["b"], "models export-tflite": ["b"],
         "models pack": ["b", "--out", "b.tar.gz"], "models unpack": ["b.tar.gz"]}


@pytest.mark.parametrize("words", ["run", "capture", "worker", "config show", "models fetch", "models list",
                                   "models info", "models export-tflite", "models pack", "models unpack",
                                   "events", "view", "log", "analyze",
                                   "web", "mqtt"])
def test_a_flag_not_given_leaves_the_config_files_value(parser, tmp_path, words):
    config = tmp_path / "c.toml"
    config.write_text(CONFIG.format(runtime=tmp_path / "rt"))
    args = parser.parse_args([*words.split(), *NEEDS.get(words, []), "--config", str(config)])
    assert flags.settings_overrides(args) == {}
    assert flags.settings_from_args(args) == load_settings(config)


def test_a_given_flag_changes_only_its_key(parser, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(CONFIG.format(runtime=tmp_path / "rt"))
    settings = flags.settings_from_args(parser.parse_args(["web", "--config", str(config), "--port", "9002"]))
    assert (settings.web.host, settings.web.port, settings.metrics.port) == ("127.0.0.3", 9002, 9200)
    settings = flags.settings_from_args(parser.parse_args(["run", "--config", str(config), "--workers", "1"]))
    assert (settings.workers.count, settings.sources[0].name, settings.sources[0].loop) == (1, "door", True)


def test_config_comes_from_the_environment_when_no_flag_names_one(parser, tmp_path, monkeypatch):
    config = tmp_path / "c.toml"
    config.write_text("[web]\nport = 9003\n")
    monkeypatch.setenv(flags.CONFIG_ENV, str(config))
    assert flags.settings_from_args(parser.parse_args(["web"])).web.port == 9003


def test_bench_hands_its_flags_on_as_given(parser, tmp_path):
    argv = ["bench", "--quick", "--frames", "5", "--fer-from", str(tmp_path / "f.json"), "--config",
            str(tmp_path / "c.toml"), "--workers", "0", "--backend", "tf"]
    args = parser.parse_args(argv)
    assert [arg for group in bench_commands.HANDED_ON for arg in group.argv(args)] == argv[1:]
    assert flags.settings_overrides(args) == {"workers": {"count": 0}, "classifier": {"backend": "tf"}}


@pytest.mark.parametrize(("argv", "key"), [
    (["web", "--port", "70000"], "web.port"),
    (["mqtt", "--url", "ftp://x"], "mqtt.url"),
    (["run", "--source", "demo", "--metrics-port", "70000"], "metrics.port"),
])
def test_bad_flag_values_are_one_line_with_the_key_and_exit_2(tmp_path, argv, key):
    result = run_cli(*argv, env=child_env(tmp_path / "rt"), timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f": {key}: " in lines[0] and lines[0].startswith(f"emotiond {argv[0]}: "), lines
