"""The History page in a real browser: ``emotiond web`` over a history database with known contents (SQLite in its
state folder), Debian's headless Chromium driven by selenium. The page's figures per bucket, its chart's bars and
gaps, its markers, its track list (paged) and a track's timeline are compared with what the API answers for the
same range; screenshots are kept in the test's folder."""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from emotiond.clients.history.store import HistoryStore
from emotiond.clients.overlay import EMOTION_COLORS

from support.daemon import child_env, wait_for
from support.history_data import T0, add_track, seed
from support.web import chromium, web_process  # noqa: F401

GAP_BGR = (0x42, 0x3D, 0x3A)  # the page's colour of a bucket without frames (#3a3d42)
EXTRA_TRACKS = 55  # with the seeded four, more than one page of 50


class Console:
    def __init__(self, base: str):
        self.base = base

    def json(self, path: str) -> dict:
        with urllib.request.urlopen(self.base + path, timeout=10) as response:
            return json.loads(response.read())


@pytest.fixture
def history_console(tmp_path: Path) -> Iterator[Console]:
    """``emotiond web`` on loopback (plain HTTP, no users) reading a seeded history from its state folder."""
    env = child_env(tmp_path / "rt")
    url = f"sqlite:///{Path(env['XDG_STATE_HOME']) / 'emotiond' / 'history.sqlite'}"
    seed(url)
    store = HistoryStore(url)
    try:
        with store.begin() as connection:
            for index in range(EXTRA_TRACKS):
                add_track(connection, "hall", 10 + index, T0 + 100 + index * 10, T0 + 105 + index * 10, ["surprise"])
    finally:
        store.close()
    with web_process(env, tmp_path / "web.log") as base:
        yield Console(base)


def loaded(driver, count: int) -> bool:
    return int(driver.execute_script("return document.body.dataset.loads || '0'")) >= count


def chart_image(driver, camera: str) -> tuple[np.ndarray, dict]:
    """The camera's chart as pixels (BGR, CSS pixel scale) and where its plot is."""
    found = driver.execute_script("""
        const canvas = document.querySelector(`.history-camera[data-camera="${arguments[0]}"] canvas`);
        return [canvas.toDataURL("image/png"), canvas.dataset.plot, canvas.dataset.from, canvas.dataset.to,
                canvas.width / canvas.clientWidth];""", camera)
    png = base64.b64decode(found[0].split(",", 1)[1])
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    scale = float(found[4])
    if scale != 1.0:
        image = cv2.resize(image, None, fx=1 / scale, fy=1 / scale, interpolation=cv2.INTER_NEAREST)
    x, y, w, h = (float(v) for v in found[1].split(","))
    return image, {"x": x, "y": y, "w": w, "h": h, "from": float(found[2]), "to": float(found[3])}


def pixel_at(image: np.ndarray, plot: dict, t: float, height_share: float) -> np.ndarray:
    """The colour at time ``t``, ``height_share`` of the way up the plot."""
    x = plot["x"] + plot["w"] * (t - plot["from"]) / (plot["to"] - plot["from"])
    y = plot["y"] + plot["h"] * (1 - height_share)
    return image[round(y), round(x)].astype(int)


def near(colour: np.ndarray, bgr: tuple[int, int, int]) -> bool:
    return float(np.linalg.norm(colour - np.array(bgr))) < 30


def test_history_page_shows_what_the_api_answers(history_console, chromium, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select

    driver = chromium
    since, until = T0, T0 + 1200
    driver.get(f"{history_console.base}/history#range=custom&since={since:.0f}&until={until:.0f}&bucket=300")
    wait_for(lambda: loaded(driver, 1), 30, "the page to load its range", interval=0.1)
    assert not driver.find_element(By.ID, "history-error").is_displayed(), \
        driver.find_element(By.ID, "history-error").text
    api = history_console.json(f"/api/history/summary?since={since:.0f}&until={until:.0f}&bucket=300")

    # per camera, every bucket's figures are the API's
    figures = driver.find_elements(By.CSS_SELECTOR, ".history-camera")
    assert [f.get_attribute("data-camera") for f in figures] == sorted(api["cameras"]) == ["hall", "lobby"]
    for figure in figures:
        camera = figure.get_attribute("data-camera")
        rows = figure.find_elements(By.CSS_SELECTOR, ".buckets tbody tr")
        buckets = api["cameras"][camera]
        assert len(rows) == len(buckets) == 4
        for row, bucket in zip(rows, buckets, strict=True):
            cells = [c.get_attribute("data-value") for c in row.find_elements(By.TAG_NAME, "td")]
            assert float(cells[0]) == bucket["start"] and int(cells[1]) == bucket["faces"]
            assert json.loads(row.get_attribute("data-shares")) == bucket["shares"]
            dominant = max(bucket["shares"], key=bucket["shares"].get) if bucket["shares"] else None
            assert (cells[2] or None) == dominant
            assert (float(cells[4]) if cells[4] else None) == bucket["valence"]
            assert (float(cells[5]) if cells[5] else None) == bucket["coverage"]
        markers = [m for m in api["markers"] if m["camera"] in (None, camera)]
        assert figure.find_element(By.TAG_NAME, "canvas").get_attribute("data-markers") == str(len(markers)) == "2"
    lobby_rows = driver.find_elements(By.CSS_SELECTOR, '.history-camera[data-camera="lobby"] .buckets tbody tr')
    driver.execute_script("for (const d of document.querySelectorAll('details')) d.open = true;")
    assert [r.find_elements(By.TAG_NAME, "td")[5].text for r in lobby_rows] == ["100%", "100%", "0%", "50%"]
    hall_rows = driver.find_elements(By.CSS_SELECTOR, '.history-camera[data-camera="hall"] .buckets tbody tr')
    assert hall_rows[1].find_elements(By.TAG_NAME, "td")[5].text == "no frames"

    # the chart draws those figures: lobby's first bucket is 2/3 happy under 1/3 sad; hall's second bucket, with
    # no frames at all, is a grey gap (not an empty "neutral" bar)
    image, plot = chart_image(driver, "lobby")
    assert near(pixel_at(image, plot, T0 + 150, 0.3), EMOTION_COLORS["happy"]), pixel_at(image, plot, T0 + 150, 0.3)
    assert near(pixel_at(image, plot, T0 + 150, 0.85), EMOTION_COLORS["sad"])
    assert near(pixel_at(image, plot, T0 + 1050, 0.3), EMOTION_COLORS["neutral"])
    hall_image, hall_plot = chart_image(driver, "hall")
    assert near(pixel_at(hall_image, hall_plot, T0 + 450, 0.5), GAP_BGR)
    assert not near(pixel_at(image, plot, T0 + 750, 0.5), GAP_BGR), "positive control: a bucket with frames"
    driver.save_screenshot(str(tmp_path / "history.png"))

    # tracks: the first page, then "Older tracks", are the API's pages in order, each track once
    expected = []
    before = None
    while True:
        page = history_console.json(f"/api/history/tracks?since={since:.0f}&until={until:.0f}&limit=50"
                                    + (f"&before={before!r}" if before is not None else ""))
        expected += page["tracks"]
        before = page["next_before"]
        if before is None:
            break
    assert len(expected) == 4 + EXTRA_TRACKS
    rows = driver.find_elements(By.CSS_SELECTOR, "#tracks tbody tr")
    assert len(rows) == 50
    more = driver.find_element(By.ID, "more-tracks")
    assert more.is_displayed()
    more.click()
    wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#tracks tbody tr")) == len(expected), 15,
             "the next page of tracks")
    assert not more.is_displayed()
    rows = driver.find_elements(By.CSS_SELECTOR, "#tracks tbody tr")
    assert [int(r.get_attribute("data-id")) for r in rows] == [t["id"] for t in expected]
    for row, track in zip(rows, expected, strict=True):
        cells = row.find_elements(By.TAG_NAME, "td")
        assert cells[0].text == track["camera"]
        assert float(cells[1].get_attribute("data-value")) == track["first_seen"]
        assert float(cells[2].get_attribute("data-value")) == track["duration"]
        assert cells[3].text == (track["dominant"] or "\u2013")
        assert cells[4].text == (track["end_reason"] or "open")

    # a click opens the track's timeline, with the API's samples, events and figures
    first = next(t for t in expected if t["camera"] == "lobby" and t["track_id"] == 1)
    row = driver.find_element(By.CSS_SELECTOR, f'#tracks tbody tr[data-id="{first["id"]}"]')
    driver.execute_script("arguments[0].scrollIntoView()", row)
    row.click()
    panel = driver.find_element(By.ID, "timeline")
    wait_for(lambda: panel.get_attribute("data-state") == "shown" and
             panel.get_attribute("data-track") == str(first["id"]), 15, "the track's timeline")
    timeline = history_console.json(f"/api/history/tracks/{first['id']}")
    facts = {dd.get_attribute("data-fact"): dd.get_attribute("data-value")
             for dd in panel.find_elements(By.CSS_SELECTOR, "#timeline-facts dd")}
    assert int(facts["samples"]) == len(timeline["samples"]) == 8
    assert float(facts["mean valence"]) == timeline["track"]["mean_valence"]
    assert facts["dominant"] == timeline["track"]["dominant"] == "happy"
    assert facts["end"] == timeline["track"]["end_reason"]
    items = panel.find_elements(By.CSS_SELECTOR, "#timeline-events li")
    assert [(li.get_attribute("data-kind"), float(li.get_attribute("data-t"))) for li in items] == [
        (e["kind"], e["t"]) for e in timeline["events"]]
    assert "happy → sad" in items[1].text
    driver.execute_script("arguments[0].scrollIntoView()", panel)
    driver.save_screenshot(str(tmp_path / "timeline.png"))

    # one camera, from the picker; then the last hour, which holds nothing (the seeded history is older)
    Select(driver.find_element(By.ID, "camera-filter")).select_by_value("hall")
    wait_for(lambda: loaded(driver, 2), 15, "the page to reload for one camera")
    assert [f.get_attribute("data-camera") for f in driver.find_elements(By.CSS_SELECTOR, ".history-camera")] == [
        "hall"]
    assert "camera=hall" in driver.current_url
    driver.find_element(By.CSS_SELECTOR, '[data-range="hour"]').click()
    wait_for(lambda: loaded(driver, 3), 15, "the last hour")
    assert "range=hour" in driver.current_url
    hour = driver.find_element(By.CSS_SELECTOR, '.history-camera[data-camera="hall"]')
    canvas = hour.find_element(By.TAG_NAME, "canvas")
    assert int(canvas.get_attribute("data-buckets")) in (60, 61), "an hour of 1-minute buckets"
    assert {c.get_attribute("data-value") for c in hour.find_elements(By.CSS_SELECTOR, "tbody td:last-child")} == {""}
    assert driver.find_element(By.ID, "no-tracks").is_displayed()
    driver.find_element(By.CSS_SELECTOR, '[data-range="custom"]').click()
    wait_for(lambda: loaded(driver, 4), 15, "the custom range")
    assert driver.find_element(By.ID, "since-input").get_attribute("value")
    assert driver.find_element(By.ID, "custom").is_displayed()
