"""Loading settings from defaults, a TOML file, the environment and flags, with one line per problem; and
writing them back as TOML."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, TomlConfigSettingsSource

from emotiond.core.errors import UsageError, format_validation_error
from emotiond.core.settings.base import MASK_SECRETS
from emotiond.core.settings.root import Settings


def _sources_with(toml_file: Path | None):
    def customise(
        cls: type[BaseSettings],
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    return classmethod(customise)


class ConfigError(UsageError):
    """A configuration problem, already formatted one line per error with its key path."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


def load_settings(config_file: Path | str | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Build settings from defaults, an optional TOML file, the environment and overrides.

    Raises ConfigError with one line per problem (key path and message).
    """
    toml_path = Path(config_file) if config_file else None
    if toml_path is not None:
        if not toml_path.is_file():
            raise ConfigError([f"{toml_path}: no such config file"])
        _check_toml_syntax(toml_path)
    _check_env_sections()
    loaded_cls = type("LoadedSettings", (Settings,), {"settings_customise_sources": _sources_with(toml_path)})
    try:
        loaded = loaded_cls(**(overrides or {}))
    except ValidationError as exc:
        lines = format_validation_error(exc, str(toml_path or "settings"))
        raise ConfigError([line + _env_origin(item["loc"]) for line, item in zip(lines, exc.errors(), strict=True)]
                          ) from None
    return Settings.model_validate(loaded.model_dump())


ENV_PREFIX, ENV_DELIMITER = "EMOTIOND_", "__"


def _env_origin(loc: tuple) -> str:
    """`` (from $EMOTIOND_SECTION__KEY)`` when that environment variable set the failing key, else nothing."""
    wanted = (ENV_PREFIX + ENV_DELIMITER.join(str(part) for part in loc)).upper()
    named = [name for name in os.environ if name.upper() == wanted]
    return f" (from ${named[0]})" if named else ""


def _check_env_sections() -> None:
    """An ``EMOTIOND_SECTION__KEY`` variable whose section does not exist would be ignored silently: refuse it."""
    wrong = [name for name in sorted(os.environ) if name.upper().startswith(ENV_PREFIX) and ENV_DELIMITER in name
             and name[len(ENV_PREFIX):].split(ENV_DELIMITER)[0].lower() not in Settings.model_fields]
    if wrong:
        raise ConfigError([f"${name}: unknown section {name[len(ENV_PREFIX):].split(ENV_DELIMITER)[0].lower()!r} "
                           f"(sections: {', '.join(Settings.model_fields)})" for name in wrong])


def _check_toml_syntax(path: Path) -> None:
    import tomllib

    try:
        tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None


def to_toml(settings: Settings) -> str:
    import tomli_w

    data = settings.model_dump(mode="json", context={MASK_SECRETS: True})
    return tomli_w.dumps(_drop_none(data))


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def nest_dotted(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``, leaving out None (flags that were not given)."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        if value is None:
            continue
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested
