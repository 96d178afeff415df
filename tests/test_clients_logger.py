"""``emotiond log`` as a real process: SIGTERM mid-stream, gaps from a crafted publisher, the summary."""

from __future__ import annotations

import csv
import signal
import subprocess
from pathlib import Path

from support.clients import CraftedPublisher, crafted_result, jsonl_records
from support.daemon import EMOTIOND, REPO, child_env, free_port, metric_samples, metric_value, run_cli, scrape, wait_for


def start_logger(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[subprocess.Popen, Path]:
    err = tmp_path / "logger.err"
    with err.open("w") as fh:
        process = subprocess.Popen([*EMOTIOND, "log", *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                   stderr=fh)
    return process, err


def test_sigterm_mid_stream_keeps_everything_received(start_daemon, events, videos, default_model, tmp_path):
    daemon = start_daemon("--source", f"tv={videos['one_face']}", "--realtime", "--loop")
    reference = events(daemon, "--camera", "tv")
    out = tmp_path / "log"
    logger, err = start_logger(tmp_path, daemon.env, "--out", str(out))
    daemon.wait_for(lambda: out.is_dir() and len(jsonl_records(out)) >= 40, 90, "the logger writing results")

    logger.send_signal(signal.SIGTERM)  # the daemon keeps publishing
    assert logger.wait(15) == 0, err.read_text()[-2000:]
    last_logged = max(r["seq"] for r in jsonl_records(out) if "kind" not in r)
    # the reference client keeps printing: once it is past the logger's last result, it has everything to compare
    wait_for(lambda: any(r["seq"] > last_logged for r in reference.lines()), 30,
             "the reference client to pass the logger's last result")
    reference.process.terminate()
    reference.process.wait(10)

    logged = jsonl_records(out)  # asserts there is no partial line
    results = [r for r in logged if "kind" not in r]
    closing = [line for line in err.read_text().splitlines() if "log closed" in line]
    assert closing and f"received {len(results)} results, wrote {len(results)}" in closing[0], closing
    by_seq = {r["seq"]: r for r in results}
    assert len(by_seq) == len(results), "no duplicates"
    seen = {r["seq"]: r for r in reference.lines()}
    for seq, record in by_seq.items():
        assert record == seen[seq], f"logged result {seq} differs from what `emotiond events` printed"
    low, high = min(by_seq), max(by_seq)
    missing = {s for s in seen if low <= s <= high} - set(by_seq)
    assert not missing, f"received by events but not logged: {sorted(missing)}"
    # gaps in the log are exactly the seq numbers nobody received (frames the realtime source dropped)
    gap_seqs = {s for g in logged if g.get("kind") == "gap" for s in range(g["first_seq"], g["last_seq"] + 1)}
    assert gap_seqs.isdisjoint(by_seq)
    assert set(range(low, high + 1)) - set(by_seq) <= gap_seqs

    summary = run_cli("log", "summary", str(out), env=daemon.env)
    assert summary.returncode == 0, summary.stderr
    happy = next(line for line in summary.stdout.splitlines() if line.startswith("tv") and " happy " in line)
    faces = sum(f["emotion"] == "happy" for r in results for f in r["faces"])
    assert int(happy.split()[2]) == faces
    assert (out / "summary.png").read_bytes()[:4] == b"\x89PNG"


def test_gaps_are_recorded_and_counted_in_metrics(tmp_path):
    endpoint = f"ipc://{tmp_path}/crafted.sock"
    publisher = CraftedPublisher(endpoint)
    port = free_port()
    out = tmp_path / "log"
    env = child_env(tmp_path / "run")
    logger, err = start_logger(tmp_path, env, "--connect", endpoint, "--out", str(out), "--format", "csv",
                               "--metrics-port", str(port))
    try:
        publisher.wait_subscriber()
        sent = [*range(0, 10), *range(15, 20), *range(40, 45)]
        for seq in sent:
            publisher.publish(crafted_result("gappy", seq))
        for seq in range(0, 20):
            publisher.publish(crafted_result("steady", seq))

        wait_for(lambda: metric_value(scrape(port), "emotiond_log_gaps_total", camera="gappy") == 2.0, 15,
                 "gaps not counted")  # 10..14 at once, 20..39 after the reorder wait
        text = scrape(port)
        assert metric_value(text, "emotiond_log_missed_results_total", camera="gappy") == 25.0
        assert metric_samples(text, "emotiond_log_results_total", camera="steady") == [20.0]
        assert metric_samples(text, "emotiond_log_gaps_total", camera="steady") == []
        assert metric_value(text, "emotiond_log_results_total", camera="gappy") == len(sent)
        logger.send_signal(signal.SIGTERM)
        assert logger.wait(15) == 0, err.read_text()[-2000:]
    finally:
        if logger.poll() is None:
            logger.kill()
        publisher.close()

    files = list(out.glob("*.csv"))
    assert len(files) == 1
    rows = list(csv.DictReader(files[0].open()))
    gaps = sorted((int(r["seq"]), int(r["missed"])) for r in rows if r["record"] == "gap")
    assert gaps == [(10, 5), (20, 20)]
    faces = [r for r in rows if r["record"] == "face"]
    assert sorted(int(r["seq"]) for r in faces if r["camera"] == "gappy") == sent
    assert len([r for r in faces if r["camera"] == "steady"]) == 20
    assert "missed seq 10..14" in err.read_text()


def test_log_needs_an_output_folder(tmp_path):
    env = child_env(tmp_path / "run")
    done = run_cli("log", "--runtime-dir", str(tmp_path), env=env)
    assert done.returncode == 2 and "--out" in done.stderr
    done = run_cli("log", "summary", str(tmp_path), env=env)
    assert done.returncode == 2 and "no .jsonl or .csv" in done.stderr
