"""A typo in an ``EMOTIOND_*`` variable is reported with the variable's name, not only the key path it maps
to, and a variable naming a section that does not exist is refused instead of being ignored."""

from __future__ import annotations

import pytest

from emotiond.core.settings import ConfigError, load_settings


def errors(monkeypatch, config=None, **variables: str) -> str:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        load_settings(config)
    return str(raised.value)


def test_the_variable_that_set_a_bad_key_is_named(monkeypatch):
    monkeypatch.setenv("EMOTIOND_DETECTION__MIN_SIZE", "60")
    assert load_settings().detection.min_size == 60  # positive control: the spelling that works
    monkeypatch.delenv("EMOTIOND_DETECTION__MIN_SIZE")
    text = errors(monkeypatch, EMOTIOND_DETECTION__MIN_SIZ="60")
    assert "detection.min_siz: unknown key (from $EMOTIOND_DETECTION__MIN_SIZ)" in text, text


def test_the_variable_that_set_a_bad_value_is_named(monkeypatch):
    text = errors(monkeypatch, EMOTIOND_DETECTION__MIN_SIZE="sixty")
    assert "detection.min_size:" in text and "(from $EMOTIOND_DETECTION__MIN_SIZE)" in text, text


def test_a_variable_of_an_unknown_section_is_refused(monkeypatch):
    text = errors(monkeypatch, EMOTIOND_DETECTON__MIN_SIZE="60")
    assert "$EMOTIOND_DETECTON__MIN_SIZE: unknown section 'detecton'" in text and "detection" in text, text


def test_a_file_key_is_not_blamed_on_the_environment(monkeypatch, tmp_path):
    config = tmp_path / "site.toml"
    config.write_text("[detection]\nmin_siz = 60\n")
    text = errors(monkeypatch, config)
    assert "detection.min_siz: unknown key" in text and "(from $" not in text, text
