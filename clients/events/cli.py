"""``emotiond events``: the daemon's results, status and track changes as JSON lines.

Only argparse at import time: the command line imports this module to build its parser; handlers import their
modules lazily, so ``emotiond --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from emotiond.daemon.flags import CONFIG, CONNECTION, add_command, settings_from_args


def cmd_events(args: argparse.Namespace) -> int:
    """Print one JSON object per result (per window in aggregates-only mode), flushing each line. Missed results
    are told on stderr; with
    ``--until-eos`` they make the exit status 1, and so does a timeout before end of stream."""
    from emotiond.clients.changes import ChangeDetector
    from emotiond.clients.events.missed import MissedResults
    from emotiond.clients.events.silence import EXIT_NOTHING_HEARD, SilenceNotice
    from emotiond.clients.gaps import Gap
    from emotiond.clients.subscribe import subscribe
    from emotiond.core import protocol

    settings = settings_from_args(args)
    endpoint = args.connect or settings.endpoint("results")
    changes = ChangeDetector() if args.changes else None
    notice = SilenceNotice(endpoint)
    missed = MissedResults()
    started = time.monotonic()
    printed = received = 0
    seen: set[str] = set()
    ended: set[str] = set()
    for message in subscribe(endpoint, args.camera, settings=settings, include_status=args.status or args.until_eos,
                             include_tracks=args.changes, include_gaps=True, include_aggregates=True,
                             timeout=args.timeout,
                             on_wait=lambda sub: notice.check(sub.silent_for())):
        if isinstance(message, Gap):
            missed.report(message)
            continue
        received += 1
        notice.heard()
        seen.add(message.camera)
        if isinstance(message, protocol.Status):
            if message.state == "eos":
                ended.add(message.camera)
            if args.status:
                sys.stdout.write(json.dumps({"status": message.to_dict()}, separators=(",", ":")) + "\n")
                sys.stdout.flush()
            if args.until_eos and ended >= (set(args.camera or ()) or seen):
                break
            continue
        if args.faces_only and isinstance(message, protocol.Result) and not message.faces:
            continue
        if isinstance(message, protocol.Aggregate):
            lines = [{"kind": "aggregate", **message.to_dict()}]
        else:
            lines = list(changes.feed(message)) if changes else [message.to_dict()]
        for line in lines:
            sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
            sys.stdout.flush()
            printed += 1
            if args.count and printed >= args.count:
                return 0
    notice.at_exit(time.monotonic() - started, received)
    if received == 0:
        return EXIT_NOTHING_HEARD
    missed.flush()
    if missed.missed:
        sys.stderr.write(missed.summary() + "\n")
    waiting = sorted((set(args.camera or ()) or seen) - ended)
    if args.until_eos and waiting:  # the timeout came first
        sys.stderr.write(f"emotiond events: no end of stream from {', '.join(waiting)} before the timeout; results "
                         "after the last ones printed may be missing\n")
        return 1
    return 1 if args.until_eos and missed.missed else 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``emotiond events`` to the emotiond parser."""
    events = add_command(commands, "events", cmd_events, (CONNECTION, CONFIG), help="print results as JSON lines",
                         description="Subscribe to the daemon and print one JSON result per line (status lines "
                                     "too with --status, in the same compact JSON). After a few seconds of "
                                     "silence, one line on stderr says where it listens.")
    events.add_argument("--camera", action="append", default=None, help="only this camera (repeatable)")
    events.add_argument("--faces-only", action="store_true", help="skip results without faces")
    events.add_argument("--changes", action="store_true",
                        help="print only track events: appeared, disappeared, smoothed emotion changed")
    events.add_argument("--count", type=int, default=0, help="exit after this many events")
    events.add_argument("--timeout", type=float, default=None,
                        help="exit after this many seconds; exit status 3 if nothing at all was received")
    events.add_argument("--until-eos", action="store_true",
                        help="exit when the cameras reach end of stream (status 1 if results were missed or the "
                             "timeout came first)")
    events.add_argument("--status", action="store_true", help="also print status events ({\"status\": ...})")
