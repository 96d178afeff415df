"""The history store on both engines: schema creation and version, read-only readers, refusal of databases that
are not ours, the network file system warning, and the valence score."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select, text

from emotiond.clients.history import schema
from emotiond.clients.history.schema import HistoryError
from emotiond.clients.history.store import HistoryReader, HistoryStore, database_url, network_filesystem
from emotiond.clients.history.valence import VALENCE_FORMULA, valence
from emotiond.core.settings import Settings


def test_a_new_store_creates_every_table_and_stamps_its_version(history_url):
    with HistoryStore(history_url) as store, store.connect() as connection:
        meta = dict(connection.execute(select(schema.meta.c.key, schema.meta.c.value)).tuples().all())
        assert meta == {"application": schema.APPLICATION, "schema_version": str(schema.SCHEMA_VERSION)}
        from sqlalchemy import inspect

        assert set(schema.TABLE_NAMES) <= set(inspect(connection).get_table_names())
        if store.dialect == "sqlite":
            assert connection.exec_driver_sql("PRAGMA application_id").scalar() == schema.APPLICATION_ID
            assert connection.exec_driver_sql("PRAGMA user_version").scalar() == schema.SCHEMA_VERSION
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    with HistoryStore(history_url) as again, again.connect() as connection:  # reopening keeps what is there
        assert connection.execute(select(schema.meta.c.key)).scalars().all().count("application") == 1


def test_a_reader_reads_but_cannot_write(history_url):
    with HistoryStore(history_url) as store, store.begin() as connection:
        connection.execute(schema.markers.insert(), [{"t": 10.0, "camera": None, "label": "sign", "source": "cli"}])
    with HistoryReader(history_url) as reader:
        with reader.connect() as connection:
            assert connection.execute(select(schema.markers.c.label)).scalars().all() == ["sign"]
        with pytest.raises(Exception, match=r"(?i)read.?only"), reader.connect() as connection:
            connection.execute(schema.markers.insert(), [{"t": 11.0, "label": "x", "source": "cli"}])
            connection.commit()


def test_a_reader_of_a_missing_sqlite_file_says_so_and_creates_nothing(tmp_path):
    path = tmp_path / "none" / "history.sqlite"
    with pytest.raises(HistoryError, match=r"no history at .* yet") as caught:
        HistoryReader(f"sqlite:///{path}")
    assert "\n" not in str(caught.value)
    assert not path.parent.exists()


def test_a_reader_of_an_empty_postgres_database_says_so(postgres_url):
    with pytest.raises(HistoryError, match=r"no history in .* yet"):
        HistoryReader(postgres_url)


def test_postgres_tables_of_another_application_are_refused(postgres_url):
    from sqlalchemy import create_engine

    engine = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE tracks (id INTEGER PRIMARY KEY, name TEXT)"))
    engine.dispose()
    with pytest.raises(HistoryError, match="tables named tracks that emotiond did not make"):
        HistoryStore(postgres_url)


def test_a_newer_schema_is_refused_on_both_engines(history_url):
    with HistoryStore(history_url) as store, store.begin() as connection:
        connection.execute(schema.meta.update().where(schema.meta.c.key == "schema_version").values(value="2"))
        if store.dialect == "sqlite":
            connection.exec_driver_sql("PRAGMA user_version = 2")
    for opener in (HistoryStore, HistoryReader):
        with pytest.raises(HistoryError, match="newer emotiond"):
            opener(history_url)


def test_the_settings_name_the_database():
    settings = Settings.model_validate({"history": {"url": ""}})
    assert database_url(settings.history).database.endswith("emotiond/history.sqlite")
    assert database_url(Settings.model_validate({"history": {"url": "/data/h.db"}}).history).database == "/data/h.db"
    pg = database_url(Settings.model_validate({"history": {"url": "postgresql://u@db:5432/h"}}).history)
    assert pg.drivername == "postgresql+psycopg" and pg.host == "db"


@pytest.mark.parametrize(("history", "message"), [
    ({"url": "mysql://h/db"}, "unsupported database"),
    ({"samples_days": 100}, "samples_days (100) must not exceed events_days (90)"),
    ({"cameras": {"door": {"samples_days": 0}}}, "greater than 0"),
    ({"cameras": {"bad name!": {"samples_days": 1}}}, "not a valid camera name"),
    ({"commit_seconds": 0}, "greater than or equal to 0.05"),
    ({"retention": 1}, "Extra inputs"),
])
def test_bad_history_settings_are_refused(history, message):
    with pytest.raises(Exception, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.model_validate({"history": history})


def test_per_camera_retention_overrides_the_defaults():
    history = Settings.model_validate({"history": {"cameras": {"door": {"samples_days": 2}}}}).history
    assert history.samples_days_for("door") == 2 and history.samples_days_for("hall") == 7
    assert history.events_days_for("door") == 90


def test_network_file_systems_are_recognised(tmp_path):
    mounts = tmp_path / "mounts"
    share = tmp_path / "share"
    share.mkdir()
    mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\nserver:/export {share} nfs4 rw 0 0\n")
    assert network_filesystem(share / "history.sqlite", mounts) == "nfs4"
    assert network_filesystem(tmp_path / "local.sqlite", mounts) is None
    mounts.write_text(f"//nas/share {share} cifs rw 0 0\n")
    assert network_filesystem(share / "h.sqlite", mounts) == "cifs"


def test_a_sqlite_file_on_a_network_share_gets_a_warning(tmp_path, caplog, monkeypatch):
    from emotiond.clients.history import store as store_module

    monkeypatch.setattr(store_module, "network_filesystem", lambda path, *_: "nfs")
    with caplog.at_level(logging.WARNING), HistoryStore(f"sqlite:///{tmp_path / 'h.sqlite'}"):
        pass
    assert any("network file system (nfs)" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(("scores", "expected"), [
    ({"happy": 0.9, "sad": 0.05, "neutral": 0.05}, 0.85),
    ({"happy": 0.1, "angry": 0.7, "fear": 0.2}, -0.6),
    ({"neutral": 1.0}, 0.0),
    ({"surprise": 0.8, "happy": 0.2}, 0.2),
    ({"happy": 0.2, "contempt": 0.6, "sad": 0.1}, -0.4),
    ({"happy": 1.5}, 1.0),
    ({"disgust": 1.2}, -1.0),
])
def test_valence_is_happy_minus_the_strongest_negative(scores, expected):
    assert valence(scores) == pytest.approx(expected)
    assert "happy" in VALENCE_FORMULA and "max(" in VALENCE_FORMULA


def test_bad_history_config_is_one_line_per_problem(tmp_path):
    from support.daemon import child_env, run_cli

    bad = tmp_path / "bad.toml"
    bad.write_text('[history]\nsample_hz = 0\nurl = "mysql://db/h"\n[history.cameras.door]\nbogus = 1\n')
    done = run_cli("config", "validate", str(bad), env=child_env(tmp_path / "run"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 3, lines
    assert any("history.sample_hz" in line for line in lines)
    assert any("history.url" in line and "unsupported database" in line for line in lines)
    assert any("history.cameras.door.bogus" in line and "unknown key" in line for line in lines)
