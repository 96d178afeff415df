"""``emotiond models pack`` and ``models unpack``: carry model bundles, and the BlazeFace detectors, from an install
with TensorFlow (which converts them) to one without (which only serves them), as one .tar.gz.

Unpacking trusts nothing in the archive: only regular files and folders under known names, no links, no paths
that climb out, a size limit; then every file is checked against its sha256 (a bundle's bundle.json, the pinned
BlazeFace sums) in a staging folder, before anything in the models folder is replaced.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from emotiond.core import bundle as bundles
from emotiond.core.errors import UsageError
from emotiond.workers import blazeface

log = logging.getLogger(__name__)

MAX_ARCHIVE_BYTES = 2 << 30  # unpacked size; the default bundle and both detectors take about 10 MB
ENTRY_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class ArchiveError(UsageError):
    pass


def pack(models_dir: Path, names: list[str], out: Path) -> list[str]:
    """Write the named bundles (each verified first) and the BlazeFace detectors, when present, to ``out``."""
    entries: list[tuple[Path, str]] = []
    for name in names:
        bundle = bundles.load(bundles.resolve(name, models_dir))
        entries.append((bundle.path, bundle.name))
    detectors = [blazeface.model_path(models_dir, model) for model in blazeface.MODELS.values()]
    if all(path.is_file() for path in detectors):
        for path, model in zip(detectors, blazeface.MODELS.values(), strict=True):
            _check_sha256(path, model.sha256)
        entries.append((detectors[0].parent, blazeface.MODELS_SUBDIR))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    with tarfile.open(partial, "w:gz") as archive:
        for path, arcname in entries:
            archive.add(path, arcname=arcname, filter=_plain)
    partial.replace(out)
    return [arcname for _, arcname in entries]


def _plain(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Files and folders only, owned by nobody in particular; partial and temporary files stay out."""
    if not (info.isfile() or info.isdir()) or PurePosixPath(info.name).name.startswith("."):
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def unpack(archive_path: Path, models_dir: Path) -> list[str]:
    """Check and install every entry of an archive made by ``pack``; the names installed."""
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".unpack-", dir=models_dir) as tmp:
        staging = Path(tmp)
        tops = _extract(archive_path, staging)
        for top in tops:
            if top == blazeface.MODELS_SUBDIR:
                _check_detectors(staging)
            else:
                loaded = bundles.load(staging / top)  # every listed file against its sha256
                if loaded.name != top:
                    raise ArchiveError(f"{archive_path}: folder {top} holds bundle {loaded.name!r}")
        for top in tops:
            target = models_dir / top
            if target.exists():
                shutil.rmtree(target)
            (staging / top).rename(target)
    return tops


def _extract(archive_path: Path, staging: Path) -> list[str]:
    try:
        archive = tarfile.open(archive_path, "r:gz")  # noqa: SIM115 (closed by the with block below)
    except (OSError, tarfile.TarError) as exc:
        raise ArchiveError(f"{archive_path}: not a models archive (.tar.gz from `emotiond models pack`): {exc}"
                           ) from None
    tops: list[str] = []
    total = 0
    with archive:
        try:
            for member in archive:
                parts = PurePosixPath(member.name).parts
                if (not parts or parts[0] in ("/", "..") or any(not ENTRY_NAME.match(p) or p == ".." for p in parts)
                        or not (member.isfile() or member.isdir())):
                    raise ArchiveError(f"{archive_path}: refusing entry {member.name!r} (only plain files and "
                                       "folders with plain names)")
                total += member.size
                if total > MAX_ARCHIVE_BYTES:
                    raise ArchiveError(f"{archive_path}: more than {MAX_ARCHIVE_BYTES >> 20} MB unpacked")
                if parts[0] not in tops:
                    tops.append(parts[0])
                target = staging.joinpath(*parts)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                assert source is not None  # a regular file always has content
                with source, target.open("wb") as out:
                    shutil.copyfileobj(source, out)
        except (OSError, tarfile.TarError, EOFError) as exc:
            raise ArchiveError(f"{archive_path}: damaged archive: {exc}") from None
    if not tops:
        raise ArchiveError(f"{archive_path}: the archive is empty")
    return tops


def _check_detectors(staging: Path) -> None:
    known = {model.file: model for model in blazeface.MODELS.values()}
    for path in sorted((staging / blazeface.MODELS_SUBDIR).iterdir()):
        model = known.get(path.name)
        if model is None:
            raise ArchiveError(f"{blazeface.MODELS_SUBDIR}/{path.name} is not a known BlazeFace model")
        _check_sha256(path, model.sha256)


def _check_sha256(path: Path, sha256: str) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise ArchiveError(f"{path.name}: sha256 {digest[:12]}… does not match the pinned {sha256[:12]}…; the file "
                           "is corrupt or was replaced")
