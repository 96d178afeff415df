"""Settings: precedence (defaults < TOML < environment < flags) and validation errors with key paths."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from emotiond.core.settings import ConfigError, Settings, load_settings, parse_source_flag, to_toml

from support.daemon import REPO, child_env, run_cli


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_precedence_defaults_file_environment_flags(tmp_path, monkeypatch):
    config = write(tmp_path / "c.toml", "[detection]\nmin_size = 50\nmin_neighbors = 7\nscale_factor = 1.2\n")
    assert Settings().detection.min_size == 40
    assert load_settings(config).detection.min_size == 50
    monkeypatch.setenv("EMOTIOND_DETECTION__MIN_SIZE", "60")
    monkeypatch.setenv("EMOTIOND_DETECTION__MIN_NEIGHBORS", "8")
    from_env = load_settings(config)
    assert (from_env.detection.min_size, from_env.detection.min_neighbors) == (60, 8)
    assert from_env.detection.scale_factor == 1.2  # the file still wins over defaults
    flagged = load_settings(config, {"detection": {"min_size": 70}})
    assert flagged.detection.min_size == 70
    assert flagged.detection.min_neighbors == 8  # flags override only what they name


@pytest.mark.parametrize(("toml", "expected"), [
    ("[detection]\nscale_factor = 1.0\n", "detection.scale_factor"),
    ("[detection]\nunknown_key = 1\n", "detection.unknown_key: unknown key"),
    ("surprise = true\n", "surprise: unknown key"),
    ("[[sources]]\nname = 'bad name'\nurl = 'demo'\n", "sources.0.name"),
    ("[[sources]]\nname = 'a'\nurl = 'demo'\n[[sources]]\nname = 'a'\nurl = 'demo'\n", "camera names must be unique"),
    ("[classifier]\nbackend = 'onnx'\n", "classifier.backend"),
    ("[metrics]\nport = 70000\n", "metrics.port"),
    ("[capture]\nreconnect_initial_seconds = 5\nreconnect_max_seconds = 1\n", "reconnect_max_seconds"),
    ("not toml at all = = =\n", "not valid TOML"),
])
def test_invalid_files_name_the_key(tmp_path, toml, expected):
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path / "bad.toml", toml))
    assert expected in str(error.value)


def test_every_field_has_a_description():
    def walk(model):
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                yield from walk(annotation)
            else:
                yield name, field.description

    missing = [name for name, description in walk(Settings) if not description]
    assert missing == []


def test_shipped_config_is_valid_and_show_round_trips(tmp_path):
    shipped = REPO / "config" / "emotiond.toml"
    assert load_settings(shipped).sources[0].url == "demo"
    shown = to_toml(load_settings(shipped, {"workers": {"count": 3}}))
    reparsed = load_settings(write(tmp_path / "shown.toml", shown))
    assert reparsed.workers.count == 3 and reparsed.sources[0].name == "cam0"
    assert tomllib.loads(shown)["detection"]["scale_factor"] == 1.1


def test_source_flags_parse_names():
    assert parse_source_flag("demo", 0) == {"name": "cam0", "url": "demo"}
    assert parse_source_flag("door=rtsp://host/x?a=b", 1) == {"name": "door", "url": "rtsp://host/x?a=b"}
    assert parse_source_flag("rtsp://host/x?a=b", 2) == {"name": "cam2", "url": "rtsp://host/x?a=b"}


def test_cli_config_commands(tmp_path):
    env = child_env(tmp_path / "rt", EMOTIOND_DETECTION__MIN_SIZE="55")
    shown = run_cli("config", "show", "--source", "lobby=demo", "--workers", "1", env=env)
    assert shown.returncode == 0, shown.stderr
    data = tomllib.loads(shown.stdout)
    assert data["detection"]["min_size"] == 55
    assert data["workers"]["count"] == 1
    assert data["sources"] == [{"name": "lobby", "url": "demo", "mode": "auto", "realtime": False, "loop": False,
                                "rtsp_transport": "tcp", "ffmpeg_options": {},
                                "fps": 0.0}]
    ok = run_cli("config", "validate", str(REPO / "config" / "emotiond.toml"), env=env)
    assert ok.returncode == 0 and "ok" in ok.stdout
    bad = write(tmp_path / "bad.toml", "[detection]\nscale_factor = 3\nbogus = 1\n[metrics]\nport = -1\n")
    result = run_cli("config", "validate", str(bad), env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3
    assert any("detection.scale_factor" in line for line in lines)
    assert any("detection.bogus" in line for line in lines)
    assert any("metrics.port" in line for line in lines)
    bad_env = run_cli("config", "show", env={**env, "EMOTIOND_WORKERS__COUNT": "many"})
    assert bad_env.returncode == 2 and "workers.count" in bad_env.stderr


def test_config_show_masks_the_web_token_that_child_processes_still_receive(tmp_path):
    secret = "s3cret-token-of-24-chars"
    settings = load_settings(None, {"web": {"token": secret}})
    assert Settings.model_validate_json(settings.model_dump_json()).web.token.get_secret_value() == secret
    env = child_env(tmp_path / "rt", EMOTIOND_WEB__TOKEN=secret)
    shown = run_cli("config", "show", env=env)
    assert shown.returncode == 0, shown.stderr
    assert secret not in shown.stdout and tomllib.loads(shown.stdout)["web"]["token"] == "**********"
