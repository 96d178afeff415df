"""The console's history API (``/api/history/...``, ``POST /api/markers``) against a real history database on
SQLite and on PostgreSQL, seeded with known contents: it answers exactly what ``history.queries`` answers, pages by
``before``, refuses bad parameters with the JSON error body, treats a database not made yet as empty, and lets only
a logged-in caller from its own origin set a marker. Every response is checked against the OpenAPI document."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from emotiond.clients.history import queries
from emotiond.clients.history.store import HistoryReader
from emotiond.clients.web.history_api import HISTORY
from emotiond.core.settings import Settings, load_settings

from support.history_data import T0, seed
from support.web import FakeBus, console, run

HOUR = 3600.0
TOKEN = "history-token-3f9c1a7e5d"


@pytest.fixture
def fake_bus(tmp_path):
    bus_ = FakeBus(f"ipc://{tmp_path}/results.sock")
    yield bus_
    bus_.close()


def history_settings(tmp_path: Path, url: str, **web: object) -> Settings:
    return load_settings(None, {"bus": {"runtime_dir": str(tmp_path / "rt")},
                                "web": {"users_file": str(tmp_path / "state" / "web-users.json"), **web},
                                "history": {"url": url}})


def _same(api: dict, direct: dict) -> None:
    """The API's JSON is the query's dict, figure for figure."""
    assert api == json.loads(json.dumps(direct))


async def _get(client, path: str, status: int = 200) -> dict:
    reply = await client.get(path)
    body = await reply.json()
    assert reply.status == status, (path, body)
    return body


def test_history_api_answers_what_the_queries_answer(history_url, tmp_path, fake_bus):
    seeded = seed(history_url)
    reader = HistoryReader(history_url)

    async def scenario():
        async with console(history_settings(tmp_path, history_url), fake_bus.endpoint) as client:
            window = f"since={T0:.0f}&until={T0 + 1200:.0f}"
            for camera, bucket, seconds in (("lobby", "5m", 300), ("hall", "60", 60), (None, "10m", 600)):
                query = f"{window}&bucket={bucket}" + (f"&camera={camera}" if camera else "")
                api = await _get(client, f"/api/history/summary?{query}")
                _same(api, queries.summary(reader, camera, T0, T0 + 1200, bucket_seconds=seconds))
            lobby = (await _get(client, f"/api/history/summary?{window}&bucket=5m&camera=lobby"))["cameras"]["lobby"]
            assert [b["coverage"] for b in lobby] == [1.0, 1.0, 0.0, 0.5], "positive control: the seeded figures"
            assert [m["label"] for m in (await _get(client, f"/api/history/summary?{window}"))["markers"]] == [
                "new sign", "doors open", "hall only"]
            # an ISO time (UTC) means the same moment as its Unix seconds
            iso = datetime.fromtimestamp(T0, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            assert (await _get(client, f"/api/history/summary?since={iso}&until={T0 + 1200:.0f}&camera=lobby"
                                       "&bucket=5m"))["cameras"]["lobby"] == lobby

            # tracks, paged by before: every track once, newest first, as the query pages them
            wide = f"since={T0:.0f}&until={T0 + HOUR:.0f}"
            seen, before = [], None
            while True:
                page = await _get(client, f"/api/history/tracks?{wide}&limit=1"
                                          + (f"&before={before!r}" if before is not None else ""))
                _same(page, queries.tracks(reader, None, T0, T0 + HOUR, before=before, limit=1))
                seen += [t["id"] for t in page["tracks"]]
                before = page["next_before"]
                if before is None:
                    break
            assert seen == [seeded.tracks[name] for name in ("open", "b", "c", "a")]
            hall = await _get(client, f"/api/history/tracks?{wide}&camera=hall")
            assert [t["id"] for t in hall["tracks"]] == [seeded.tracks["c"]]

            timeline = await _get(client, f"/api/history/tracks/{seeded.tracks['a']}")
            _same(timeline, queries.track(reader, seeded.tracks["a"]))
            assert len(timeline["samples"]) == seeded.samples["a"] and len(timeline["events"]) == seeded.events["a"]
            assert [e["kind"] for e in timeline["events"]] == ["appeared", "changed", "disappeared"]
            missing = await _get(client, "/api/history/tracks/987654", 404)
            assert "no track 987654" in missing["error"]

            events = await _get(client, f"/api/history/events?{wide}&camera=lobby&limit=3")
            _same(events, queries.events(reader, "lobby", T0, T0 + HOUR, limit=3))
            rest = await _get(client, f"/api/history/events?{wide}&camera=lobby&before={events['next_before']!r}")
            assert len(events["events"]) + len(rest["events"]) == sum(
                seeded.events[name] for name in ("a", "b", "open"))
            _same(await _get(client, f"/api/history/markers?{wide}&camera=hall"),
                  queries.markers(reader, "hall", T0, T0 + HOUR))

            # markers set through the API are the history's, with source "api", for one camera or every one
            made = await client.post("/api/markers", json={"label": "new menu", "camera": "lobby", "t": T0 + 700})
            assert made.status == 201
            marker = await made.json()
            assert (marker["label"], marker["camera"], marker["t"], marker["source"]) == (
                "new menu", "lobby", T0 + 700, "api")
            everywhere = await (await client.post("/api/markers", json={"label": " lights off ", "t": T0 + 710})
                                ).json()
            assert everywhere["camera"] is None and everywhere["label"] == "lights off"
            listed = await _get(client, f"/api/history/markers?{wide}&camera=lobby")
            assert [m["label"] for m in listed["markers"]] == ["new sign", "doors open", "new menu", "lights off"]
            assert [m["id"] for m in listed["markers"]][2:] == [marker["id"], everywhere["id"]]
            assert [m["label"] for m in (await _get(client, f"/api/history/markers?{wide}&camera=hall")
                                         )["markers"]] == ["doors open", "hall only", "lights off"]

            access = client.server.app[HISTORY]
            assert access.reader() is access.reader(), "the reader is opened once per application"
            assert access.reader().read_only

    try:
        run(scenario)
    finally:
        reader.close()


BAD_QUERIES = [
    ("summary?camera=bad%20name", "camera"), ("summary?since=soon", "since"), ("summary?since=", "since"),
    ("summary?until=" + "9" * 65, "until"), (f"summary?since={T0 + 10:.0f}&until={T0:.0f}", "since"),
    ("summary?bucket=90", "bucket"), ("summary?bucket=0", "bucket"), ("summary?bucket=5x", "bucket"),
    ("summary?bucket=1.5m", "bucket"), ("summary?bucket=300.0", "bucket"), ("summary?bucket=5%20m", "bucket"),
    ("summary?since=0&bucket=1m", "buckets"),
    ("tracks?limit=0", "limit"), ("tracks?limit=1001", "limit"), ("tracks?before=-1", "before"),
    ("tracks?before=nan", "before"), ("tracks?since=2026-13-45", "since"), ("events?limit=many", "limit"),
    ("events?camera=", "camera"), ("markers?until=yesterday", "until"), ("tracks/abc", "track id"),
    ("tracks/0", "track id"), ("tracks/99999999999999999", "track id"),
]


def test_bad_parameters_are_400_with_the_json_error_body(tmp_path, fake_bus):
    url = f"sqlite:///{tmp_path / 'state' / 'history.sqlite'}"
    seed(url)

    async def scenario():
        async with console(history_settings(tmp_path, url), fake_bus.endpoint) as client:
            await _get(client, "/api/history/summary?bucket=5m")  # positive control: good values answer
            for query, word in BAD_QUERIES:
                body = await _get(client, f"/api/history/{query}", 400)
                assert body["status"] == 400 and word in body["error"], (query, body)
                assert "\n" not in body["error"] and "Traceback" not in body["error"]
            for payload, word in [({"label": ""}, "label"), ({"label": "   "}, "label"),
                                  ({"label": "x" * 201}, "label"), ({"label": "a\x07b"}, "control"),
                                  ({"label": 5}, "label"), ({"label": "ok", "camera": "bad name"}, "camera"),
                                  ({"label": "ok", "t": -1}, "t must"), ({"label": "ok", "t": "noon"}, "t must"),
                                  ({"label": "ok", "t": True}, "t must"), ({"label": "ok", "colour": "red"}, "label"),
                                  ({"camera": "lobby"}, "label"), (["ok"], "label")]:
                reply = await client.post("/api/markers", json=payload)
                body = await reply.json()
                assert reply.status == 400 and word in body["error"], (payload, body)
            reply = await client.post("/api/markers", data=b"{not json", headers={"Content-Type": "application/json"})
            assert reply.status == 400 and "not JSON" in (await reply.json())["error"]
            reply = await client.post("/api/markers", data=b"label=x", headers={"Content-Type": "text/plain"})
            assert reply.status == 415
            reply = await client.post("/api/markers", data=json.dumps({"label": "x" * 5000}).encode(),
                                      headers={"Content-Type": "application/json"})
            assert reply.status == 413
            wide = f"since={T0:.0f}&until={T0 + HOUR:.0f}"
            assert len((await _get(client, f"/api/history/markers?{wide}"))["markers"]) == 3, "a bad marker was kept"
    run(scenario)


def test_no_database_yet_is_empty_and_a_foreign_file_is_503(tmp_path, fake_bus):
    path = tmp_path / "later" / "history.sqlite"
    url = f"sqlite:///{path}"

    async def scenario():
        async with console(history_settings(tmp_path, url), fake_bus.endpoint) as client:
            summary = await _get(client, f"/api/history/summary?camera=lobby&since={T0:.0f}&until={T0 + 600:.0f}")
            assert [b["coverage"] for b in summary["cameras"]["lobby"]] == [None, None], "gaps, not neutral"
            assert summary["markers"] == [] and summary["bucket_seconds"] == 300
            assert (await _get(client, "/api/history/tracks")) == {"tracks": [], "next_before": None}
            assert (await _get(client, "/api/history/events")) == {"events": [], "next_before": None}
            assert (await _get(client, "/api/history/markers")) == {"markers": []}
            await _get(client, "/api/history/tracks/1", 404)
            await _get(client, "/api/history/summary?bucket=90", 400)  # still checked without a database
            assert not path.exists(), "a read made the database"

            made = await client.post("/api/markers", json={"label": "opening day"})
            assert made.status == 201, await made.text()
            assert path.exists(), "positive control: the first marker makes the database"
            listed = await _get(client, "/api/history/markers?since=1h")
            assert [m["label"] for m in listed["markers"]] == ["opening day"], "the reader never opened it"

        foreign = tmp_path / "foreign.sqlite"
        foreign.write_bytes(b"this is not a database at all" * 100)
        async with console(history_settings(tmp_path, f"sqlite:///{foreign}"), fake_bus.endpoint) as client:
            for path_ in ("/api/history/summary", "/api/history/tracks"):
                reply = await client.get(path_)
                body = await reply.json()
                assert reply.status == 503 and "not an SQLite database" in body["error"], body
            refused = await client.post("/api/markers", json={"label": "x"})
            assert refused.status == 503
        assert foreign.read_bytes() == b"this is not a database at all" * 100, "the foreign file was written"
    run(scenario)


def test_history_needs_a_login_and_markers_come_from_the_console_origin(tmp_path, fake_bus):
    url = f"sqlite:///{tmp_path / 'state' / 'history.sqlite'}"
    seed(url)
    bearer = {"Authorization": f"Bearer {TOKEN}"}

    async def scenario():
        async with console(history_settings(tmp_path, url, token=TOKEN), fake_bus.endpoint) as client:
            for path in ("/api/history/summary", "/api/history/tracks", "/api/history/tracks/1",
                         "/api/history/events", "/api/history/markers"):
                assert (await client.get(path)).status == 401, path
                assert (await client.get(path, headers=bearer)).status in (200, 404), path
            page = await client.get("/history", allow_redirects=False)
            assert page.status == 303 and page.headers["Location"] == "/login"
            assert (await client.post("/api/markers", json={"label": "anonymous"})).status == 401
            elsewhere = await client.post("/api/markers", json={"label": "forged"},
                                          headers={**bearer, "Origin": "https://attacker.example"})
            assert elsewhere.status == 403
            own = await client.post("/api/markers", json={"label": "from the console"},
                                    headers={**bearer, "Origin": f"http://{client.host}:{client.port}"})
            assert own.status == 201, await own.text()
            listed = await (await client.get(f"/api/history/markers?since={T0:.0f}", headers=bearer)).json()
            assert [m["label"] for m in listed["markers"]][-1] == "from the console"
            assert "forged" not in [m["label"] for m in listed["markers"]]
            assert "anonymous" not in [m["label"] for m in listed["markers"]]
    run(scenario)
