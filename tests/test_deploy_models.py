"""`emotiond models pack` / `unpack`: bundles and detectors carried to an install without TensorFlow, every file
checked against its sha256 and nothing in the archive trusted (links, paths that climb out, damaged files)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from support.daemon import child_env, run_cli


@pytest.fixture(scope="module")
def packed(tmp_path_factory, default_model) -> Path:
    out = tmp_path_factory.mktemp("pack") / "models.tar.gz"
    done = run_cli("models", "pack", default_model.name, "--out", str(out),
                   env=child_env(tmp_path_factory.mktemp("pack-run")))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{out}: {default_model.name}, blazeface"
    return out


def _unpack(archive: Path, models: Path, tmp_path: Path):
    return run_cli("models", "unpack", str(archive), env=child_env(tmp_path / "run", EMOTIOND_MODELS__DIR=str(models)))


def _rewrite(source: Path, out: Path, change) -> Path:
    """A copy of an archive with each member passed through ``change(info, data) -> (info, data) | None``."""
    with tarfile.open(source) as original, tarfile.open(out, "w:gz") as copy:
        for info in original:
            data = original.extractfile(info).read() if info.isfile() else None
            changed = change(info, data)
            if changed is not None:
                info, data = changed
                copy.addfile(info, io.BytesIO(data) if data is not None else None)
    return out


def test_unpacked_bundle_is_identical_and_loads(packed, default_model, tmp_path):
    models = tmp_path / "models"
    done = _unpack(packed, models, tmp_path)
    assert done.returncode == 0, done.stderr
    for name in ("bundle.json", "model.keras", "model.tflite"):
        assert (models / default_model.name / name).read_bytes() == (default_model / name).read_bytes()
    assert sorted(p.name for p in (models / "blazeface").iterdir()) == sorted(
        p.name for p in (default_model.parent / "blazeface").iterdir() if not p.name.startswith("."))
    info = run_cli("models", "info", default_model.name,
                   env=child_env(tmp_path / "run", EMOTIOND_MODELS__DIR=str(models)))
    assert info.returncode == 0 and '"fer-mini-xception"' in info.stdout, info.stderr


def test_a_damaged_file_is_refused_and_nothing_is_replaced(packed, default_model, tmp_path):
    models = tmp_path / "models"
    assert _unpack(packed, models, tmp_path).returncode == 0
    before = (models / default_model.name / "model.tflite").read_bytes()

    def flip(info, data):
        if info.name.endswith("model.tflite"):
            data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
        return info, data

    done = _unpack(_rewrite(packed, tmp_path / "damaged.tar.gz", flip), models, tmp_path)
    assert done.returncode == 2
    assert "sha256" in done.stderr and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert (models / default_model.name / "model.tflite").read_bytes() == before
    assert [p.name for p in models.iterdir() if p.name.startswith(".")] == []  # no staging folder left behind


@pytest.mark.parametrize(("entry", "kind"), [("../escaped", tarfile.REGTYPE), ("/etc/escaped", tarfile.REGTYPE),
                                             ("fer-mini-xception/model.tflite", tarfile.SYMTYPE)])
def test_entries_that_leave_the_models_folder_are_refused(packed, tmp_path, entry, kind):
    hostile = tmp_path / "hostile.tar.gz"
    with tarfile.open(packed) as original:
        members = [(info, original.extractfile(info).read() if info.isfile() else None) for info in original]
    bad = tarfile.TarInfo(entry)
    bad.type = kind
    if kind == tarfile.SYMTYPE:
        bad.linkname = "/etc/passwd"
        members = [(i, d) for i, d in members if i.name != entry]
    with tarfile.open(hostile, "w:gz") as out:
        for info, data in [*members, (bad, b"x" if kind == tarfile.REGTYPE else None)]:
            if data is not None:
                info.size = len(data)
            out.addfile(info, io.BytesIO(data) if data is not None else None)
    models = tmp_path / "work" / "models"
    done = _unpack(hostile, models, tmp_path)
    assert done.returncode == 2 and "refusing entry" in done.stderr, done.stderr
    assert not (tmp_path / "work" / "escaped").exists() and not list(models.glob("*"))


def test_not_an_archive_is_one_line(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not gzip at all")
    done = _unpack(junk, tmp_path / "models", tmp_path)
    assert done.returncode == 2 and "not a models archive" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
