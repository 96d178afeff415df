"""``emotiond history``: summary, tracks, a track's timeline, events, markers, export, forget and mark.

Every action takes ``--camera``, ``--since``/``--until`` (``2h``, ``30m``, ``7d``, ``now`` or ISO 8601 times, UTC
unless an offset is given) and ``--json``, and reads the database named by ``[history] url`` (or ``--db``). Only
argparse at import time: the command line imports this module to build its parser; handlers import their modules
lazily, so ``emotiond --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from emotiond.core.errors import UsageError
from emotiond.daemon.flags import CONFIG, Flag, FlagGroup, add_command, settings_from_args

DATABASE = FlagGroup("history database", (
    Flag("--db", "history.url", "history database: a SQLite file or postgresql://USER@HOST:PORT/DB (default: "
                                "[history] url, else history.sqlite in the state folder)"),
))
CAMERA = Flag("--camera", None, "only this camera (markers: its own and those for every camera)", default=None)
SINCE = Flag("--since", None, "from this time: 2h, 30m, 7d (ago), now, or ISO 8601 (UTC unless an offset is given; "
                              "default: a day before --until)", default=None)
UNTIL = Flag("--until", None, "up to this time, same forms as --since (default: now)", default=None)
JSON = Flag("--json", None, "print JSON instead of a table", action="store_true")
QUERY = FlagGroup("history query", (CAMERA, SINCE, UNTIL, JSON))
GROUPS = (CONFIG, DATABASE, QUERY)
DEFAULT_SINCE = "24h"


# ---------------------------------------------------------------- shared plumbing

def _window(args: argparse.Namespace, default_since: str | None = DEFAULT_SINCE) -> tuple[float | None, float]:
    from emotiond.clients.history.times import parse_time

    now = time.time()
    until = parse_time(args.until, now, "--until") if args.until is not None else now
    since_text = args.since if args.since is not None else default_since
    since = parse_time(since_text, until if args.since is None else now, "--since") if since_text else None
    if since is not None and since >= until:
        raise UsageError("--since must be before --until")
    return since, until


@contextmanager
def _database(args: argparse.Namespace, write: bool = False) -> Iterator[Any]:
    """The reader (or, for ``write``, the read-write store) of the configured history; database failures while it
    is used are one line."""
    from sqlalchemy import exc

    from emotiond.clients.history.store import describe_error, open_reader, open_store

    settings = settings_from_args(args)
    handle = open_store(settings) if write else open_reader(settings)
    try:
        yield handle
    except exc.SQLAlchemyError as error:
        raise UsageError(f"history database {handle.where}: {describe_error(error)}") from None
    finally:
        handle.close()


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=1)
    sys.stdout.write("\n")


def _time(seconds: float | None) -> str:
    from emotiond.clients.history.times import iso

    text = iso(seconds)
    return "-" if text is None else text[:19].replace("T", " ")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in [headers, *rows]]
    return "\n".join(lines) + "\n"


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# ---------------------------------------------------------------- actions

def cmd_summary(args: argparse.Namespace) -> int:
    from emotiond.clients.history import queries
    from emotiond.clients.history.times import parse_duration

    since, until = _window(args)
    bucket = parse_duration(args.bucket, "--bucket")
    with _database(args) as reader:
        result = queries.summary(reader, args.camera, since, until, bucket, args.zone)
    if args.json:
        _print_json(result)
        return 0
    print(f"{_time(result['since'])} to {_time(result['until'])} UTC, buckets of {result['bucket_seconds']} s; "
          f"valence = {result['valence_formula']}")
    if not result["cameras"]:
        print("no minutes recorded in this range")
    for camera, buckets in result["cameras"].items():
        labels = sorted({label for bucket in buckets for label in bucket["shares"]})
        rows = [[_time(b["start"]), str(b["faces"]), *(_share(b["shares"], label) for label in labels),
                 _number(b["valence"]), "gap" if b["coverage"] is None else f"{b['coverage']:.0%}"] for b in buckets]
        print(f"\n{camera}")
        sys.stdout.write(_table(["start (UTC)", "faces", *labels, "valence", "coverage"], rows))
    for marker in result["markers"]:
        print(f"marker {_time(marker['t'])} {marker['camera'] or 'all cameras'}: {marker['label']}")
    return 0


def _share(shares: dict[str, float], label: str) -> str:
    """A label's share; "-" where the bucket has no face-seconds at all (nothing to share out)."""
    return f"{shares.get(label, 0.0):.0%}" if shares else "-"


def cmd_tracks(args: argparse.Namespace) -> int:
    from emotiond.clients.history import queries

    since, until = _window(args)
    with _database(args) as reader:
        result = queries.tracks(reader, args.camera, since, until, _before(args), args.limit)
    if args.json:
        _print_json(result)
        return 0
    rows = [[str(t["id"]), t["camera"], _time(t["first_seen"]), _number(t["duration"], 1), t["dominant"] or "-",
             _number(t["mean_valence"]), t["end_reason"] or "open", str(t["samples"])] for t in result["tracks"]]
    sys.stdout.write(_table(["id", "camera", "start (UTC)", "seconds", "dominant", "valence", "end", "samples"],
                            rows))
    _next_page(result["next_before"])
    return 0


def cmd_track(args: argparse.Namespace) -> int:
    from emotiond.clients.history import queries

    with _database(args) as reader:
        result = queries.track(reader, args.id)
    if result is None:
        raise UsageError(f"no track {args.id} in the history (forgotten, purged, or never seen)")
    if args.json:
        _print_json(result)
        return 0
    track = result["track"]
    print(f"track {track['id']}: {track['camera']} from {_time(track['first_seen'])} for "
          f"{_number(track['duration'], 1)} s, dominant {track['dominant'] or '-'}, ended "
          f"{track['end_reason'] or 'not yet'}, model {track['model'] or '-'}")
    rows = [[_time(e["t"]), e["kind"], e["emotion"] or "-", e["previous"] or "-", e["reason"] or ""]
            for e in result["events"]]
    sys.stdout.write(_table(["time (UTC)", "event", "emotion", "previous", "reason"], rows))
    rows = [[_time(s["t"]), s["emotion"], _number(s["confidence"]), _number(s["valence"])] for s in result["samples"]]
    if rows:
        sys.stdout.write("\n" + _table(["time (UTC)", "emotion", "confidence", "valence"], rows))
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    from emotiond.clients.history import queries

    since, until = _window(args)
    with _database(args) as reader:
        result = queries.events(reader, args.camera, since, until, _before(args), args.limit)
    if args.json:
        _print_json(result)
        return 0
    rows = [[_time(e["t"]), e["camera"], str(e["track"]), e["kind"], e["emotion"] or "-", e["previous"] or "-",
             e["reason"] or ""] for e in result["events"]]
    sys.stdout.write(_table(["time (UTC)", "camera", "track", "event", "emotion", "previous", "reason"], rows))
    _next_page(result["next_before"])
    return 0


def cmd_markers(args: argparse.Namespace) -> int:
    from emotiond.clients.history import queries

    since, until = _window(args)
    with _database(args) as reader:
        result = queries.markers(reader, args.camera, since, until)
    if args.json:
        _print_json(result)
        return 0
    rows = [[str(m["id"]), _time(m["t"]), m["camera"] or "all", m["source"], m["label"]] for m in result["markers"]]
    sys.stdout.write(_table(["id", "time (UTC)", "camera", "source", "label"], rows))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from emotiond.clients.history.export import export

    since, until = _window(args)
    if args.out.is_dir():
        raise UsageError(f"--out {args.out} is a folder; name the file to write")
    with _database(args) as reader:
        written = export(reader, args.out, args.format, args.table, args.camera, since, until)
    if args.json:
        _print_json({"out": str(args.out), "format": args.format, "table": args.table, "rows": written})
    else:
        print(f"{written} {args.table} rows written to {args.out}")
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    from emotiond.clients.history.forget import forget
    from emotiond.clients.history.times import parse_time

    if args.between is None and args.track is None:
        raise UsageError("give --between A B (with --camera NAME, or for every camera) or --track ID")
    if args.since is not None or args.until is not None:
        raise UsageError("forget takes its range as --between A B, not --since/--until")
    between = None
    if args.between is not None:
        now = time.time()
        between = (parse_time(args.between[0], now, "--between"), parse_time(args.between[1], now, "--between"))
        if between[0] > between[1]:
            raise UsageError("--between A B: A must not be after B")
    with _database(args, write=True) as store:
        removed = forget(store, args.camera, between, args.track)
    if args.json:
        _print_json(removed)
        return 0
    print(f"forgot {removed['tracks']} tracks, {removed['track_events']} track events and {removed['samples']} "
          "samples (minute aggregates are anonymous counts and stay)")
    if removed["open_tracks_left"]:
        print(f"{removed['open_tracks_left']} matching tracks are still open and were left; run this again once "
              "they have ended")
    return 0


def cmd_mark(args: argparse.Namespace) -> int:
    from emotiond.clients.history.markers import add_marker, check_marker
    from emotiond.clients.history.times import parse_time

    if args.since is not None or args.until is not None:
        raise UsageError("mark takes its time as --at TIME, not --since/--until")
    at = parse_time(args.at, time.time(), "--at") if args.at is not None else None
    check_marker(args.label, args.camera, at)  # bad input is one line before the database is opened
    with _database(args, write=True) as store:
        marker_id = add_marker(store, args.label, args.camera, at, "cli")
    if args.json:
        _print_json({"id": marker_id})
    else:
        print(f"marker {marker_id} set")
    return 0


def _before(args: argparse.Namespace) -> float | None:
    from emotiond.clients.history.times import parse_time

    return None if args.before is None else parse_time(args.before, time.time(), "--before")


def _next_page(before: float | None) -> None:
    if before is not None:
        print(f"more: --before {before!r}")


def _limit(text: str) -> int:
    from emotiond.clients.history.queries import MAX_LIMIT

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_LIMIT}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


# ---------------------------------------------------------------- the parser

def _action(actions: argparse._SubParsersAction, name: str, handler: Callable[[argparse.Namespace], int],
            help: str, description: str) -> argparse.ArgumentParser:
    return add_command(actions, name, handler, GROUPS, help=help, description=description)


def _paged(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--before", default=None,
                        help="the next page: only rows older than this (the `more: --before T` line of a page)")
    parser.add_argument("--limit", type=_limit, default=100, help="rows per page (default: 100, at most 1000)")


def register(commands: argparse._SubParsersAction) -> None:
    history = commands.add_parser(
        "history", help="ask the emotion history: summaries, tracks, events, markers; export, forget, mark",
        description="Query the emotion history that `emotiond run` writes ([history]; docs/history.md). Times are "
                    "UTC. Every action takes --camera, --since/--until and --json.")
    actions = history.add_subparsers(dest="history_command", metavar="ACTION", required=True)

    summary = _action(actions, "summary", cmd_summary, "emotion shares, valence and coverage per time bucket",
                      "Per camera and bucket: faces, the share of face-seconds per emotion, mean valence and "
                      "coverage (frames analysed / frames seen; 'gap' when none were), with the markers.")
    summary.add_argument("--bucket", default="5m", help="bucket width, whole minutes: 1m, 5m, 1h, 1d (default: 5m)")
    summary.add_argument("--zone", default="", help=argparse.SUPPRESS)

    tracks = _action(actions, "tracks", cmd_tracks, "tracks (one face followed across frames), newest first",
                     "Tracks that started in the range, newest first, a page at a time.")
    _paged(tracks)
    track = _action(actions, "track", cmd_track, "one track's timeline: its events and samples",
                    "One track (an id from `history tracks`): its summary, events and samples.")
    track.add_argument("id", type=_positive_int, help="track id")

    events = _action(actions, "events", cmd_events, "track events (appeared, changed, disappeared), newest first",
                     "Track events in the range, newest first, a page at a time.")
    _paged(events)
    _action(actions, "markers", cmd_markers, "markers in the range", "Markers set with `history mark`, "
            "POST /api/markers or the MQTT marker topic.")

    export = _action(actions, "export", cmd_export, "samples or minute aggregates to CSV or Parquet",
                     "Write samples (one row per kept sample, a column per emotion score) or minute aggregates "
                     "(--table minutes) to --out. The CSV opens with # lines naming the model, the time zone "
                     "and the valence formula. Parquet needs pyarrow (pip install 'emotiond[parquet]').")
    export.add_argument("--out", type=Path, required=True, help="file to write")
    export.add_argument("--format", choices=["csv", "parquet"], default="csv", help="file format (default: csv)")
    export.add_argument("--table", choices=["samples", "minutes"], default="samples",
                        help="what to export (default: samples)")

    forget = _action(actions, "forget", cmd_forget, "erase tracks with their events and samples",
                     "Erase the tracks seen in a time range (of one camera with --camera), or one track, with their "
                     "events and samples: a person's right to erasure. Minute aggregates are anonymous counts "
                     "and stay.")
    forget.add_argument("--between", nargs=2, metavar=("A", "B"), default=None,
                        help="the range: two times (2h, ISO 8601, ...); every track seen in it goes, whole")
    forget.add_argument("--track", type=_positive_int, default=None, help="one track id")

    mark = _action(actions, "mark", cmd_mark, "set a marker (\"new sign\") now, for one camera or all",
                   "Set a marker: a moment, a label and a camera (default: every camera). Summaries and the "
                   "console draw it.")
    mark.add_argument("label", help="what happened, e.g. \"new sign\"")
    mark.add_argument("--at", default=None, help="when (default: now); same forms as --since")
