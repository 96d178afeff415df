"""How fast the emotion history writes and answers, and how large it grows: ``python -m
emotiond.benchmarks.bench_history``.

1. **Writer rate**: the history writer's own code (``HistoryWriter.handle`` and its commits, about one a second as
   in the daemon) fed tracked results of 6 cameras with 4 faces each, every face kept as a sample; samples written
   per second of wall time and per CPU-second of the writer's calls (the results are made beforehand), then the
   same with the time to decode those results off the bus added, SQLite and PostgreSQL.
2. **Summary query**: a database holding ``--days`` (7) of ``--cameras`` (6) cameras, generated through the same
   writer from results every ``--interval`` (20) seconds per camera with faces coming and going (tracks of about
   two minutes, their emotion changing every 30 s); then ``queries.summary`` of one camera over the last 24 hours
   at 1-minute buckets (1,440 buckets), the first call and the median of ``--repeat`` calls, on each engine.
3. **Size**: the database's size per camera-day (PostgreSQL's without the empty database's own catalogue), for
   that database and for a busy camera (one face in view all day, every sample kept at ``[history] sample_hz`` =
   4 a second: the most a camera-day holds per face).
4. **Live** (``--live``): ``emotiond run`` with 6 cameras at 30 fps (live, Haar), once with the history off and
   once with it on, in the same run: drops per camera and the subscriber's p95 latency (benchmarks/live.py).

PostgreSQL is a throwaway cluster (Debian's ``postgresql``: initdb in a temporary folder) unless ``--postgres URL``
names a database to use (it is emptied first). Prints a Markdown table; ``--out`` writes history.md/.json.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emotiond.benchmarks import harness
from emotiond.clients.history import queries, schema
from emotiond.clients.history.metrics import HistoryMetrics
from emotiond.clients.history.store import HistoryReader, HistoryStore
from emotiond.clients.history.writer import HistoryWriter
from emotiond.core import protocol
from emotiond.core.lifecycle import exit_on_sigterm
from emotiond.core.settings import Settings

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
EMOTIONS = ("happy", "neutral", "sad", "surprise", "angry", "neutral")
DAY = 86400.0
TRACK_SECONDS = 120.0
CHANGE_SECONDS = 30.0
WRITER_RATE_TARGET = 20_000.0
QUERY_LIMIT_MS = 100.0


# ---------------------------------------------------------------- results made to measure

def _scores(emotion: str) -> dict[str, float]:
    rest = 0.06 / (len(LABELS) - 1)
    return {label: 0.94 if label == emotion else rest for label in LABELS}


_SCORES = {emotion: _scores(emotion) for emotion in LABELS}


def result(camera: str, seq: int, t: float, faces: list[tuple[int, str]], ended: tuple[int, ...] = ()
           ) -> protocol.Result:
    built = tuple(protocol.Face(box=(10 + 60 * i, 20, 50, 50), emotion=emotion, confidence=0.94,
                                scores=_SCORES[emotion], track_id=track, smoothed_emotion=emotion,
                                smoothed_confidence=0.9) for i, (track, emotion) in enumerate(faces))
    return protocol.Result(camera=camera, seq=seq, captured_at=t, published_at=t + 0.01, frame_size=(640, 480),
                           faces=built, latency_ms={"total": 10.0}, worker="w1", model="fer-bench",
                           extra={"ended_tracks": list(ended)} if ended else {})


@dataclass
class SimCamera:
    """One camera's faces: ``faces`` slots, each a run of tracks of TRACK_SECONDS; a slot is empty for a while
    between tracks on cameras with ``gaps``."""

    name: str
    faces: int
    gaps: bool
    seq: int = 0

    def at(self, t: float, start: float) -> list[tuple[int, str]]:
        """The faces in view at ``t``: (track id, emotion), the emotion changing every CHANGE_SECONDS."""
        faces = []
        period = TRACK_SECONDS * (1.5 if self.gaps else 1.0)
        for slot in range(self.faces):
            number, into = divmod(t - start + slot * 37.0, period)
            if into < TRACK_SECONDS:
                emotion = EMOTIONS[(int(into // CHANGE_SECONDS) + slot + int(number)) % len(EMOTIONS)]
                faces.append((int(number) * self.faces + slot + 1, emotion))
        return faces


def stream(cameras: list[SimCamera], start: float, seconds: float, interval: float) -> Iterator[protocol.Result]:
    """Results of every camera every ``interval`` seconds over ``seconds``, in time order. A track ends (the
    face left) in the first frame without it."""
    seen: dict[str, set[int]] = {camera.name: set() for camera in cameras}
    steps = int(seconds / interval)
    for step in range(steps):
        t = start + step * interval
        for camera in cameras:
            faces = camera.at(t, start)
            now = {track for track, _ in faces}
            ended = tuple(sorted(seen[camera.name] - now))
            seen[camera.name] = now
            yield result(camera.name, camera.seq, t, faces, ended)
            camera.seq += 1


# ---------------------------------------------------------------- the writer, driven as the daemon drives it

class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_writer(url: str, clock: Clock) -> HistoryWriter:
    from prometheus_client import CollectorRegistry

    settings = Settings.model_validate({"history": {"url": url, "buffer_rows": 5_000_000}})
    return HistoryWriter(HistoryStore(url, prepare=False), settings,
                         metrics=HistoryMetrics(CollectorRegistry()), clock=clock, writer_id="bench")


class Spent:
    """Wall and CPU seconds spent inside its ``with`` blocks, summed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.cpu_seconds = 0.0

    def __enter__(self) -> None:
        self._began, self._cpu_began = time.monotonic(), time.process_time()

    def __exit__(self, *exc_info: object) -> None:
        self.seconds += time.monotonic() - self._began
        self.cpu_seconds += time.process_time() - self._cpu_began


def write(url: str, results: Iterator[protocol.Result], chunk: int = 256) -> dict[str, float]:
    """Feed ``results`` to a writer in chunks (as its loop receives them), letting it commit whenever its commit
    interval has passed, then close it; rows written, and the wall and CPU seconds of the writer's own calls. Making
    the results is left out: building validated ``Result`` objects here cost as much as the writer itself, and the
    writer process gets them by decoding the bus instead (``decoding`` measures that)."""
    clock = Clock(0.0)
    writer = make_writer(url, clock)
    writer.start()
    spent = Spent()
    buffer: list[protocol.Result] = []
    for item in results:
        buffer.append(item)
        if len(buffer) >= chunk:
            clock.now = buffer[-1].captured_at
            with spent:
                writer.handle(buffer)
                writer.flush_due()
            buffer = []
    with spent:
        if buffer:
            clock.now = buffer[-1].captured_at
            writer.handle(buffer)
        clock.now += 120.0
        writer.close()
    seconds, cpu = spent.seconds, spent.cpu_seconds
    if writer.outage is not None:
        raise SystemExit(f"the writer dropped rows while generating: {writer.outage}")
    writer.store.close()
    committing = writer.metrics.registry.get_sample_value("emotiond_history_commit_seconds_sum") or 0.0
    return {"seconds": seconds, "cpu_seconds": cpu, "results": writer.received, "commit_seconds": committing}


def count(url: str, table: str) -> int:
    import sqlalchemy as sa

    with HistoryReader(url) as reader, reader.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(schema.metadata.tables[table]))
                   .scalar_one())


EMPTY_DATABASE = {"bytes": 0}  # the size of the PostgreSQL database before the history's tables


def size_bytes(url: str) -> int:
    """The database's size on disk: a SQLite file with its WAL (checkpointed first), or pg_database_size."""
    import sqlalchemy as sa

    if url.startswith("sqlite"):
        path = Path(url.split("sqlite:///", 1)[1])
        store = HistoryStore(url)
        with store.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        store.close()
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    with HistoryReader(url) as reader, reader.connect() as connection:
        size = int(connection.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one())
    return size - EMPTY_DATABASE["bytes"]


def decoding(results: list[protocol.Result]) -> Spent:
    """Wall and CPU seconds to decode ``results`` as the writer's bus subscription does (``protocol.decode`` of each
    message as sent), encoded beforehand."""
    messages = [protocol.encode_result(item) for item in results]
    spent = Spent()
    with spent:
        for parts in messages:
            protocol.decode(parts)
    return spent


# ---------------------------------------------------------------- the measurements

def _per(count: float, seconds: float) -> float:
    return count / seconds if seconds else 0.0


def writer_rate(url: str, seconds: float) -> dict[str, float]:
    """6 cameras x 4 faces at 4 results a second each (every face kept as a sample: sample_hz 4): the writer's own
    rate, and the rate with decoding the results off the bus added (what its process as a whole manages)."""
    cameras = [SimCamera(f"cam{i}", 4, gaps=False) for i in range(6)]
    results = list(stream(cameras, 1_800_000_000.0, seconds, 0.25))
    figures = write(url, iter(results))
    decoded = decoding(results)
    samples = count(url, "samples")
    return {"samples": samples, "seconds": figures["seconds"], "samples_per_second": samples / figures["seconds"],
            "commit_seconds": figures["commit_seconds"], "cpu_seconds": figures["cpu_seconds"],
            "samples_per_cpu_second": _per(samples, figures["cpu_seconds"]),
            "samples_per_commit_second": _per(samples, figures["commit_seconds"]),
            "decode_cpu_seconds": decoded.cpu_seconds,
            "samples_per_second_with_decoding": _per(samples, figures["seconds"] + decoded.seconds),
            "samples_per_cpu_second_with_decoding": _per(samples, figures["cpu_seconds"] + decoded.cpu_seconds)}


def history_of_days(url: str, cameras: int, days: float, interval: float) -> dict[str, float]:
    """``days`` of ``cameras`` cameras (faces 1, 2, 1, 2, ...; every other camera with empty spells)."""
    scene = [SimCamera(f"cam{i}", 1 + i % 2, gaps=bool(i % 2)) for i in range(cameras)]
    start = 1_800_000_000.0 - (1_800_000_000.0 % DAY)
    figures = write(url, stream(scene, start, days * DAY, interval))
    figures.update(end=start + days * DAY, size=size_bytes(url), days=days, cameras=cameras,
                   samples=count(url, "samples"), minutes=count(url, "minutes"), tracks=count(url, "tracks"))
    return figures


def summary_times(url: str, end: float, repeat: int) -> dict[str, float]:
    """``queries.summary`` of cam0 over the last 24 hours at 1-minute buckets: the first call on a fresh reader,
    then the median and largest of ``repeat`` more."""
    with HistoryReader(url) as reader:
        timings, cpu = [], []
        for _ in range(repeat + 1):
            began, cpu_began = time.monotonic(), time.process_time()
            result = queries.summary(reader, "cam0", end - DAY, end, 60)
            timings.append((time.monotonic() - began) * 1000)
            cpu.append((time.process_time() - cpu_began) * 1000)
        buckets = result["cameras"]["cam0"]
        covered = sum(1 for bucket in buckets if bucket["coverage"] is not None)
    return {"first_ms": timings[0], "median_ms": statistics.median(timings[1:]), "max_ms": max(timings[1:]),
            "median_cpu_ms": statistics.median(cpu[1:]),
            "buckets": len(buckets), "buckets_with_frames": covered}


def busy_camera_day(url: str, hours: float) -> dict[str, float]:
    """One camera, one face in view all the time, 4 results a second (each kept as a sample), for ``hours``;
    its size scaled to a day."""
    scene = [SimCamera("cam0", 1, gaps=False)]
    write(url, stream(scene, 1_800_000_000.0, hours * 3600, 0.25))
    size = size_bytes(url)
    return {"hours": hours, "samples": count(url, "samples"), "size": size, "per_day": size * 24 / hours}


# ---------------------------------------------------------------- PostgreSQL

@contextlib.contextmanager
def postgres(url: str | None) -> Iterator[str | None]:
    """``url`` as given, or a throwaway cluster's database; None when PostgreSQL is not installed."""
    if url:
        yield url
        return
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        print("PostgreSQL is not installed (Debian package postgresql): its rows are left out", file=sys.stderr)
        yield None
        return
    bindir = Path(found[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="emotiond-bench-pg-"))
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = harness.free_port()
    try:
        subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(root / "data"), "-A", "trust", "-U",
                        "postgres", "-E", "UTF8", "--locale=C", "--no-sync"], check=True, capture_output=True)
        subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "log"),
                        "-w", "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"], check=True,
                       capture_output=True)
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate",
                            "stop"], capture_output=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def empty_postgres(url: str) -> int:
    """Drop the history tables; the size of the database left (its own catalogue, about 7.5 MB), which the
    sizes reported leave out."""
    import sqlalchemy as sa

    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as connection:
        schema.metadata.drop_all(connection)
    with engine.connect() as connection:
        empty = int(connection.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one())
    engine.dispose()
    return empty


# ---------------------------------------------------------------- live, with the history on and off

def live(work: Path, frames: int) -> dict[str, Any]:
    """6 live cameras at 30 fps (Haar), the history off then on, through benchmarks/live.py."""
    import tomli_w

    from emotiond.benchmarks import bench
    from emotiond.benchmarks import live as live_runs
    from emotiond.benchmarks.emotiond_run import DaemonSettings

    videos = bench.build_videos(work / "videos", frames)
    rows: dict[str, Any] = {}
    for label, enabled in (("history off", False), ("history on", True)):
        config = work / f"{label.replace(' ', '-')}.toml"
        config.write_text(tomli_w.dumps({"history": {"enabled": enabled,
                                                     "url": str(work / f"live-{label[-3:].strip()}.sqlite")}}))
        rows[label] = live_runs.multi_camera(videos, 6, "haar", frames, DaemonSettings(config=config), work)
        print(f"live, 6 cameras, {label}: {live_runs.row(label, rows[label])}", flush=True)
    history_file = work / "live-on.sqlite"
    rows["history on"]["samples_written"] = count(f"sqlite:///{history_file}", "samples") \
        if history_file.exists() else 0
    return rows


# ---------------------------------------------------------------- report

def _mb(size: float) -> str:
    return f"{size / 1e6:.1f} MB"


def render(report: dict[str, Any]) -> str:
    lines = ["| figure | SQLite | PostgreSQL | limit |", "|---|---|---|---|"]
    engines = report["engines"]

    def cell(engine: str, key: str, fmt: str) -> str:
        value = engines.get(engine, {})
        for part in key.split("."):
            value = value.get(part, {}) if isinstance(value, dict) else {}
        return fmt.format(value) if isinstance(value, int | float) else "-"

    lines.append(f"| writer: samples written per second | {cell('sqlite', 'writer.samples_per_second', '{:,.0f}')} "
                 f"| {cell('postgresql', 'writer.samples_per_second', '{:,.0f}')} | ≥ {WRITER_RATE_TARGET:,.0f} "
                 "(SQLite) |")
    lines.append(f"| writer: samples per CPU-second of its own calls | "
                 f"{cell('sqlite', 'writer.samples_per_cpu_second', '{:,.0f}')} | "
                 f"{cell('postgresql', 'writer.samples_per_cpu_second', '{:,.0f}')} | |")
    lines.append(f"| writer: samples per CPU-second, decoding them off the bus included | "
                 f"{cell('sqlite', 'writer.samples_per_cpu_second_with_decoding', '{:,.0f}')} | "
                 f"{cell('postgresql', 'writer.samples_per_cpu_second_with_decoding', '{:,.0f}')} | |")
    lines.append(f"| writer: samples per second of its commits alone | "
                 f"{cell('sqlite', 'writer.samples_per_commit_second', '{:,.0f}')} | "
                 f"{cell('postgresql', 'writer.samples_per_commit_second', '{:,.0f}')} | |")
    for key, label in (("first_ms", "first call"), ("median_ms", "median"), ("max_ms", "slowest"),
                       ("median_cpu_ms", "median CPU of the reader's process")):
        lines.append(f"| 24 h summary of 1 camera, 1-min buckets, {label} (ms) | "
                     f"{cell('sqlite', 'summary.' + key, '{:.1f}')} | {cell('postgresql', 'summary.' + key, '{:.1f}')}"
                     f" | ≤ {QUERY_LIMIT_MS:.0f} |")
    for engine in ("sqlite", "postgresql"):
        days = engines.get(engine, {}).get("days")
        if days:
            per = days["size"] / (days["cameras"] * days["days"])
            engines[engine]["per_camera_day"] = per
    per_day = "{:,.0f} B"
    lines.append(f"| size per camera-day, the {report['days']:g}-day database | "
                 f"{cell('sqlite', 'per_camera_day', per_day)} | {cell('postgresql', 'per_camera_day', per_day)} | |")
    lines.append(f"| size per camera-day, one face all day (4 samples/s) | {cell('sqlite', 'busy.per_day', per_day)}"
                 f" | {cell('postgresql', 'busy.per_day', per_day)} | |")
    out = ["\n".join(lines)]
    for engine, figures in engines.items():
        days = figures.get("days")
        if days:
            out.append(f"{engine}: {days['days']:g} days x {days['cameras']} cameras = {days['results']:,.0f} results "
                       f"through the writer in {days['seconds']:.0f} s: {days['minutes']:,} minute rows, "
                       f"{days['tracks']:,} tracks, {days['samples']:,} samples, {_mb(days['size'])}")
    if report.get("live"):
        from emotiond.benchmarks import live as live_runs

        out.append("\n".join([*live_runs.TABLE_HEAD, *(live_runs.row(label, entry)
                                                       for label, entry in report["live"].items())]))
    return "\n\n".join(out) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_history", description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=7.0, help="days of history in the query database (default 7)")
    parser.add_argument("--cameras", type=int, default=6, help="cameras in it (default 6)")
    parser.add_argument("--interval", type=float, default=20.0,
                        help="seconds between one camera's results while generating it (default 20)")
    parser.add_argument("--writer-seconds", type=float, default=240.0,
                        help="simulated seconds of the writer-rate run (default 240: 23,040 samples)")
    parser.add_argument("--busy-hours", type=float, default=6.0, help="hours of the busy camera (default 6)")
    parser.add_argument("--repeat", type=int, default=20, help="timed summary calls after the first (default 20)")
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL to use (emptied first) instead of a "
                                                         "throwaway cluster")
    parser.add_argument("--engines", default="sqlite,postgresql", help="engines to measure (default both)")
    parser.add_argument("--live", action="store_true", help="also run 6 live cameras with the history off and on")
    parser.add_argument("--live-frames", type=int, default=600, help="frames per live camera (default 600: 20 s)")
    parser.add_argument("--out", type=Path, default=None, help="folder for history.md and history.json")
    return parser.parse_args(argv)


def measure_engine(engine: str, url: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for name, run in (("writer", lambda u: writer_rate(u, args.writer_seconds)),
                      ("days", lambda u: history_of_days(u, args.cameras, args.days, args.interval)),
                      ("busy", lambda u: busy_camera_day(u, args.busy_hours))):
        target = url
        if engine == "sqlite":
            target = f"sqlite:///{work / f'{name}.sqlite'}"
        else:
            EMPTY_DATABASE["bytes"] = empty_postgres(url)
        figures[name] = run(target)
        print(f"{engine} {name}: " + ", ".join(f"{k} {v:,.1f}" if isinstance(v, float) else f"{k} {v}"
                                               for k, v in figures[name].items()), flush=True)
        if name == "days":
            figures["summary"] = summary_times(target, figures["days"]["end"], args.repeat)
            print(f"{engine} summary: {figures['summary']}", flush=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    args = parse_args(argv)
    engines = [engine.strip() for engine in args.engines.split(",") if engine.strip()]
    work = Path(tempfile.mkdtemp(prefix="bench-history-"))
    report: dict[str, Any] = {"days": args.days, "cameras": args.cameras, "interval": args.interval, "engines": {}}
    try:
        if "sqlite" in engines:
            report["engines"]["sqlite"] = measure_engine("sqlite", "", args, work)
            print(render(report), flush=True)
        if "postgresql" in engines:
            with postgres(args.postgres) as url:
                if url is not None:
                    report["engines"]["postgresql"] = measure_engine("postgresql", url, args, work)
        if args.live:
            try:
                report["live"] = live(work, args.live_frames)
            except (Exception, SystemExit) as error:  # the other figures still count
                report["live_error"] = f"{type(error).__name__}: {error}"
                print(f"live run failed: {report['live_error']}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    markdown = render(report)
    print(markdown)
    if args.out is not None:
        harness.write_results(args.out, "history", markdown, report)
    sqlite = report["engines"].get("sqlite", {})
    failed = sqlite.get("writer", {}).get("samples_per_second", math.inf) < WRITER_RATE_TARGET or any(
        figures.get("summary", {}).get("median_ms", 0.0) > QUERY_LIMIT_MS for figures in report["engines"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
