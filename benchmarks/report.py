"""The benchmark's Markdown tables (benchmarks/results/latest.md, copied into docs/performance.md), each figure labelled
with what it measures."""

from __future__ import annotations

from typing import Any

from emotiond.benchmarks.live import TABLE_HEAD, row

FILE_MODE_LEGEND = [
    "* **fps**: results per second from the first result to the last, start-up excluded (emotiond: publish "
    "times; fer: its loop, after one warm-up frame). **ratio** = emotiond fps / fer fps.",
    "* **wall fps**: frames / seconds from process start to the last event received, start-up included (emotiond: "
    "`emotiond run` started to the subscriber's last event; fer: its whole process, with the TensorFlow import, "
    "model load and video read).",
    "* **worker latency**: the worker's own `published_at - captured_at`. **subscriber latency**: the receive time "
    "in a subscriber (`Subscription`, as `emotiond events` and the Python API read) - `captured_at`: capture to "
    "event where the user sees it. File mode reads frames ahead as fast as the decoder allows, so both include "
    "the time a frame waits for a worker.",
    "* **recall**: true faces found (IoU ≥ 0.4). **agreement**: faces both found with the same top emotion. "
    "**CPU ms/frame**: all processes, first to last result. **lost**: frames that never reached the subscriber.",
]
LIVE_LEGEND = [
    "* **dropped**: frames missing between a camera's first and last result (stale frames skipped on purpose), "
    "after a warm-up of 5 s (at most a third of the video) in which workers load and place cameras; drops and "
    "latencies of the warm-up are left out (the JSON report keeps its drops). Latencies as above; paced input, "
    "so no read-ahead queue.",
]


def _pair(values: dict[str, float]) -> str:
    return f"{values['p50']:.0f} / {values['p95']:.0f}"


def render(report: dict[str, Any]) -> str:
    lines = [f"Machine: {report['machine']['cores']} cores, load average {report['machine']['load']:.1f} at "
             f"start. 640x480 30 fps videos of real face photos ({report['frames']} frames), file mode (every "
             "frame, as fast as possible).", "",
             "| video | fer fps | emotiond fps | ratio | wall fps (fer / ours) | recall (fer / ours) | "
             "agreement with fer | worker latency p50 / p95 ms | subscriber latency p50 / p95 ms | "
             "CPU ms/frame (fer / ours) | peak RSS MB (fer / ours by process) | lost |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    if report.get("fer_from"):
        lines[1:1] = ["", f"fer figures reused from {report['fer_from']} (same videos, checked by hash)."]
    for label, e in report["file_mode"].items():
        ours, fer = e["emotiond"], e["fer"]
        rss = ", ".join(f"{k} {v:.0f}" for k, v in sorted(ours["peak_rss_mb"].items()))
        lines.append(f"| {label} | {fer['fps']:.1f} | {ours['fps']:.1f} | **{ours['ratio']:.2f}x** | "
                     f"{fer['wall_fps']:.1f} / {ours['wall_fps']:.1f} | "
                     f"{fer['recall']:.3f} / {ours['recall']:.3f} | {ours['agreement_with_fer']:.3f} | "
                     f"{_pair(ours['worker_latency_ms'])} | {_pair(ours['subscriber_latency_ms'])} | "
                     f"{fer['cpu_per_frame_ms']:.1f} / {ours['cpu_per_frame_ms']:.1f} | "
                     f"{fer['peak_rss_mb']:.0f} / {rss} | {e['lost']} |")
    lines += ["", *FILE_MODE_LEGEND, "",
              "Worker time per frame (ms) and the share of CPU spent on bus, serialization and batching:", "",
              "| video | decode | detect | crop | classify | publish | proxy | CPU by process | bus share of CPU |",
              "|---|---|---|---|---|---|---|---|---|"]
    for label, e in report["file_mode"].items():
        s = e["emotiond"]["stage_ms"]
        roles = ", ".join(f"{k} {v:.1f}" for k, v in sorted(e["emotiond"]["cpu_ms_by_role"].items()))
        lines.append(f"| {label} | {s['decode']:.2f} | {s['detect']:.2f} | {s['crop']:.2f} | {s['classify']:.2f} | "
                     f"{s['publish']:.2f} | {e['emotiond']['proxy_ms']:.2f} | {roles} | "
                     f"{e['emotiond']['bus_overhead_share']:.1%} |")
    live = report.get("live")
    if live:
        one, three = live["one_camera"], live.get("three_cameras")
        lengths = f"{live.get('frames', report['frames'])} frames" + (
            f", three cameras {report['frames']} frames each" if three else "")
        lines += ["", f"Live mode (paced at 30 fps; one camera {lengths}):", "",
                  "| set-up | dropped | worker latency p50 / p95 ms | subscriber latency p50 / p95 ms |",
                  "|---|---|---|---|",
                  f"| 1 camera, 1 face | {one['drop_rate']['cam0']:.1%} | {_pair(one['worker_latency_ms'])} | "
                  f"{_pair(one['subscriber_latency_ms'])} |"]
        if three:  # the full bench only
            rates = ", ".join(f"{k} {v:.1%}" for k, v in three["drop_rate"].items())
            lines.append(f"| 3 cameras (1, 4, 1 faces) | {rates} | {_pair(three['worker_latency_ms'])} | "
                         f"{_pair(three['subscriber_latency_ms'])} |")
        lines += ["", *LIVE_LEGEND]
        if live.get("six_cameras"):  # the full bench only
            six_frames = next(iter(live["six_cameras"].values())).get("frames", report["frames"])
            lines += ["", f"Six live cameras (3 one-face, 3 four-face, alternating; paced at 30 fps, {six_frames} "
                      "frames each), per detector:", "",
                      *TABLE_HEAD, *(row(f"6 cameras, {detector}", entry)
                                     for detector, entry in live["six_cameras"].items()),
                      "", "* **spread**: smallest to largest drop rate, their ratio and difference. **fair**: no "
                      "camera drops more than 1.5 times another's rate plus 2 points."]
    return "\n".join(lines) + "\n"
