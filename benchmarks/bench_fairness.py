"""Fair service under overload, measured live: ``python -m emotiond.benchmarks.bench_fairness``.

Runs ``emotiond run`` on several live cameras paced at 30 fps, alternating a one-face and a four-face video of
real face photos (640x480, capture/synthetic.py), in the set-ups that overload a two-core machine: 6, 7 and 8
cameras with Haar and 10 with BlazeFace (and 6 with each detector, which should not drop at all). For each it
prints every camera's drop rate after a 5 s warm-up (frames missing between its first and last result), their
spread (smallest to largest, ratio and difference), whether the spread is within the limit (no camera above 1.5
times another's rate plus 2 points), and the subscriber-side p95 latency (capture to receipt).

``--set-ups`` picks some (``6-haar 10-blazeface``), ``--seconds`` sets the videos' length (default 20 s), and
``--out`` writes fairness.md and fairness.json. The daemon gets the user's settings (``--config`` or
$EMOTIOND_CONFIG, ``EMOTIOND_*``) plus ``--detector``. The load average before and after is printed: figures
taken while other work ran must say so.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from emotiond.benchmarks import harness, live
from emotiond.benchmarks.emotiond_run import DaemonSettings
from emotiond.capture import synthetic
from emotiond.core.errors import UsageError
from emotiond.core.lifecycle import exit_on_sigterm

SET_UPS = {"6-haar": (6, "haar"), "7-haar": (7, "haar"), "8-haar": (8, "haar"), "10-blazeface": (10, "blazeface"),
           "6-blazeface": (6, "blazeface")}
OVERLOADED = ("6-haar", "7-haar", "8-haar", "10-blazeface")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set-ups", nargs="+", default=list(OVERLOADED), metavar="N-DETECTOR",
                        help=f"which runs (default: {' '.join(OVERLOADED)}; known: {' '.join(SET_UPS)})")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each camera's video (default 20)")
    parser.add_argument("--config", type=Path, default=None, help="the daemon's TOML config")
    parser.add_argument("--out", type=Path, default=None, help="folder for fairness.md/.json (default: print only)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.set_ups if name not in SET_UPS]
    if unknown:
        parser.error(f"unknown set-up {', '.join(unknown)}: choose from {', '.join(SET_UPS)}")
    if not 3 <= args.seconds <= 600:
        parser.error("--seconds must be between 3 and 600")
    return args


def render(report: dict[str, Any]) -> str:
    lines = [f"Live cameras paced at 30 fps, alternating one and four faces ({report['frames']} frames each, "
             f"figures after a {live.WARM_UP_SECONDS:.0f} s warm-up), on "
             f"{report['cores']} cores; load average {report['load_before']:.1f} before and {report['load_after']:.1f} "
             "after (other work was running when it is well above 0).", "", *live.TABLE_HEAD]
    lines += [live.row(name, entry) for name, entry in report["runs"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    daemon = DaemonSettings(config=args.config)
    frames = round(args.seconds * 30)
    work = Path(tempfile.mkdtemp(prefix="emotiond-fairness-"))
    report: dict[str, Any] = {"cores": os.cpu_count(), "frames": frames, "load_before": os.getloadavg()[0],
                              "runs": {}}
    try:
        videos = {"1 face": synthetic.write_video(work / "one_face.mp4", synthetic.SceneSpec(faces=1, frames=frames)),
                  "4 faces": synthetic.write_video(work / "four_faces.mp4",
                                                   synthetic.SceneSpec(faces=4, frames=frames))}
        for name in args.set_ups:
            cameras, detector = SET_UPS[name]
            entry = live.multi_camera(videos, cameras, detector, frames, daemon, work)
            report["runs"][name] = entry
            print(live.row(name, entry), flush=True)
    except UsageError as exc:
        print(f"bench_fairness: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["load_after"] = os.getloadavg()[0]
    markdown = render(report)
    print(markdown)
    if args.out is not None:
        harness.write_results(args.out, "fairness", markdown, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
