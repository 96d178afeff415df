"""The emotion history end to end: ``emotiond run`` on the demo video with the web console enabled (the history
writer is one of its roles by default); markers set with ``emotiond history mark`` and ``POST /api/markers`` while it
runs, and the daemon's own console reading the writer's commits as they land. Once the daemon has stopped (its writer
closes the open minute and the open tracks), the CLI (``emotiond history ... --json``), the API and the History page
in Chromium show the same per-minute summary, the same tracks and the same markers."""

from __future__ import annotations

import json
import math
import time
import urllib.request

from support.daemon import child_roles, free_port, run_cli, wait_for
from support.web import chromium, web_process  # noqa: F401

CAMERA = "cam0"


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def post_json(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def cli_json(env: dict[str, str], *args: str) -> dict:
    done = run_cli("history", *args, "--json", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_cli_api_and_page_show_the_same_history(start_daemon, default_model, chromium, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    started = time.time()
    port = free_port()
    daemon = start_daemon("--source", "demo", "--realtime", "--loop", workers=1,
                          env={"EMOTIOND_WEB__ENABLED": "true", "EMOTIOND_WEB__PORT": str(port)})
    live = f"http://127.0.0.1:{port}"
    daemon.wait_ready()

    def console_up() -> bool:
        try:
            return get_json(f"{live}/api/health")["status"] == "ok"
        except OSError:
            return False

    daemon.wait_for(console_up, 60, "the daemon's web console")
    assert {"web", "history"} <= set(child_roles(daemon).values()), child_roles(daemon)

    # markers from the command line and from the API, while the daemon writes
    mark = cli_json(daemon.env, "mark", "new sign", "--camera", CAMERA)
    status, posted = post_json(f"{live}/api/markers", {"label": "doors open"})
    assert status == 201 and posted["source"] == "api" and posted["camera"] is None

    # the daemon's console reads what the writer commits, as it commits it
    def written() -> bool:
        tracks = get_json(f"{live}/api/history/tracks?since=10m")["tracks"]
        events = get_json(f"{live}/api/history/events?since=10m")["events"]
        return bool(tracks) and any(t["samples"] for t in tracks) and bool(events)

    daemon.wait_for(written, 60, "tracks, samples and events in the daemon's console")
    markers_live = get_json(f"{live}/api/history/markers?since=10m")["markers"]
    assert [(m["id"], m["source"]) for m in markers_live] == [(mark["id"], "cli"), (posted["id"], "api")]
    assert daemon.stop() == 0

    # the database holds still now: the same window through the CLI, the API and the page
    since, until = math.floor(started / 60) * 60 - 60.0, time.time() + 1.0
    window = ("--since", repr(since), "--until", repr(until))
    summary = cli_json(daemon.env, "summary", *window, "--bucket", "1m")
    tracks = cli_json(daemon.env, "tracks", *window, "--limit", "1000")
    markers = cli_json(daemon.env, "markers", *window)
    buckets = summary["cameras"][CAMERA]
    assert len(buckets) >= 2 and buckets[0]["start"] == since
    assert sum(sum(b["face_seconds"].values()) for b in buckets) > 0, "positive control: faces were kept"
    assert any(b["coverage"] for b in buckets) and buckets[0]["coverage"] is None, "before the daemon: a gap"
    assert tracks["tracks"] and tracks["next_before"] is None
    assert all(t["end_reason"] is not None for t in tracks["tracks"]), "the writer ended the open tracks"
    assert [m["label"] for m in markers["markers"]] == ["new sign", "doors open"]
    assert summary["markers"] == markers["markers"]

    with web_process(daemon.env, tmp_path / "web.log") as base:
        query = f"since={since!r}&until={until!r}"
        assert get_json(f"{base}/api/history/summary?{query}&bucket=60") == summary
        assert get_json(f"{base}/api/history/tracks?{query}&limit=1000") == tracks
        assert get_json(f"{base}/api/history/markers?{query}") == markers
        first = tracks["tracks"][-1]
        timeline = cli_json(daemon.env, "track", str(first["id"]))
        assert get_json(f"{base}/api/history/tracks/{first['id']}") == timeline

        driver = chromium
        driver.get(f"{base}/history#range=custom&since={since!r}&until={until!r}&bucket=60")
        wait_for(lambda: driver.execute_script("return document.body.dataset.loads") == "1", 30, "the page")
        assert not driver.find_element(By.ID, "history-error").is_displayed()
        figure = driver.find_element(By.CSS_SELECTOR, f'.history-camera[data-camera="{CAMERA}"]')
        rows = figure.find_elements(By.CSS_SELECTOR, ".buckets tbody tr")
        assert len(rows) == len(buckets)
        for row, bucket in zip(rows, buckets, strict=True):
            cells = [c.get_attribute("data-value") for c in row.find_elements(By.TAG_NAME, "td")]
            assert float(cells[0]) == bucket["start"] and int(cells[1]) == bucket["faces"]
            assert json.loads(row.get_attribute("data-shares")) == bucket["shares"]
            assert (float(cells[4]) if cells[4] else None) == bucket["valence"]
            assert (float(cells[5]) if cells[5] else None) == bucket["coverage"]
        canvas = figure.find_element(By.TAG_NAME, "canvas")
        assert canvas.get_attribute("data-marker-ids") == ",".join(str(m["id"]) for m in markers["markers"])
        shown = driver.find_elements(By.CSS_SELECTOR, "#tracks tbody tr")
        assert [int(r.get_attribute("data-id")) for r in shown] == [t["id"] for t in tracks["tracks"][:50]]
        for row, track in zip(shown, tracks["tracks"], strict=False):
            cells = row.find_elements(By.TAG_NAME, "td")
            assert float(cells[1].get_attribute("data-value")) == track["first_seen"]
            assert cells[3].get_attribute("data-value") == (track["dominant"] or "")
            assert cells[4].text == (track["end_reason"] or "open")
        driver.save_screenshot(str(tmp_path / "history.png"))
