"""The web console's HTTP API with aiohttp's test client, fed by a real XPUB socket that publishes crafted
frames, results and status (and sees which topics the console subscribes to, as the workers do)."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest

from emotiond.clients.overlay import EMOTION_COLORS
from emotiond.clients.web import media
from emotiond.core import protocol

from support.web import (
    FACE_BOX,
    LANDMARKS,
    FakeBus,
    box_drawn,
    console,
    decode_jpeg,
    dots_drawn,
    face_result,
    run,
    scene_frame,
    split_mjpeg,
    until,
    until_async,
    wait_seen,
    web_settings,
)


@pytest.fixture
def fake_bus(tmp_path):
    bus_ = FakeBus(f"ipc://{tmp_path}/results.sock")
    yield bus_
    bus_.close()


FRAME_TOPIC = protocol.FRAME_PREFIX + b"cam0"


def _at(entry: dict) -> float:
    """When a ring entry happened: a result's published_at, a change event's at."""
    payload = entry["payload"]
    return payload["published_at"] if entry["topic"] == "result" else payload["at"]


def test_health_cameras_status_and_bad_messages(tmp_path, fake_bus):
    async def scenario():
        async with console(web_settings(tmp_path), fake_bus.endpoint) as client:
            health = await client.get("/api/health")
            assert health.status == 200 and (await health.json())["status"] == "ok"
            await wait_seen(client, fake_bus, "cam0")
            fake_bus.status("cam0", "eos", "end of stream")
            fake_bus.raw([b"result.cam0", b"\xc1 not msgpack", b""])
            fake_bus.status("cam1", "down", "camera unplugged")

            async def camera(name):
                cameras = (await (await client.get("/api/cameras")).json())["cameras"]
                return next((c for c in cameras if c["name"] == name), None)

            cam1 = await until_async(lambda: camera("cam1"), 10, "cam1 from its status")
            cam0 = await camera("cam0")
            assert cam0["status"] == "eos" and cam0["frame_size"] == [640, 480]
            assert cam1["status"] == "down" and cam1["status_message"] == "camera unplugged"
            assert cam1["frame_size"] is None
            stats = await (await client.get("/api/stats")).json()
            assert stats["web"]["bad_messages"] == {"bad_msgpack": 1}
            assert stats["metrics"] is None  # no daemon metric files in this runtime folder
            assert (await client.get("/api/health")).status == 200
    run(scenario)


def test_events_ring_results_changes_and_filters(tmp_path, fake_bus):
    async def scenario():
        async with console(web_settings(tmp_path, events_ring=50), fake_bus.endpoint) as client:
            await wait_seen(client, fake_bus, "cam0", seq=0)
            start = time.time()
            fake_bus.result(face_result("cam0", 1, "happy", track=7))
            fake_bus.result(face_result("cam0", 2, "sad", track=7))
            fake_bus.result(face_result("door", 1, "angry", track=3))
            middle = time.time()
            fake_bus.result(protocol.Result("cam0", 3, time.time(), time.time(), (640, 480), (), {}, "t", "m",
                                            {"ended_tracks": [7]}))

            async def events(query=""):
                reply = await client.get("/api/events" + query)
                assert reply.status == 200, await reply.text()
                return (await reply.json())["events"]

            async def disappeared():
                return any(e["payload"].get("event") == "disappeared" for e in await events())

            await until_async(disappeared, 10, "the disappeared event")
            changes = [e["payload"] for e in await events("?topic=event&camera=cam0")]
            assert [(c["event"], c["track_id"], c["emotion"]) for c in changes] == [
                ("disappeared", 7, "sad"), ("changed", 7, "sad"), ("appeared", 7, "happy"), ("appeared", 1, "happy")]
            assert changes[1]["previous"] == "happy"
            everything = await events("?limit=50")
            assert {e["topic"] for e in everything} == {"result", "event"}
            results = [(e["payload"]["camera"], e["payload"]["seq"]) for e in everything if e["topic"] == "result"]
            assert results[:4] == [("cam0", 3), ("door", 1), ("cam0", 2), ("cam0", 1)]  # newest first
            door = await events("?camera=door")
            assert door and all(e["payload"]["camera"] == "door" for e in door)
            sad = await events("?emotion=sad&topic=result")
            assert [e["payload"]["seq"] for e in sad] == [2]
            assert len(await events("?limit=2")) == 2
            late = await events(f"?after={middle}")
            assert late and all(_at(e) > middle for e in late)
            # ?before=: everything in the ring is in `everything` (50 fit); it splits at `start` into the seq-0
            # results wait_seen published and the results and events published since
            early = await events(f"?before={start}")
            assert early, "?before= found nothing, though seq-0 results were published before the bound"
            assert all(e["payload"]["seq"] == 0 for e in early)
            since = [e for e in everything if _at(e) >= start]
            assert {("cam0", 1), ("cam0", 2), ("door", 1)} <= {(e["payload"]["camera"], e["payload"]["seq"])
                                                                for e in since}, "positive control"
            assert not [e for e in since if e in early], "?before= returned entries at or after the bound"
            assert early == [e for e in everything if _at(e) < start], "?before= is not exactly the earlier entries"

            assert len(await events("?limit=100000")) == len(everything), "a limit beyond the ring gets the ring"
            for query, key in [("?limit=0", "limit"), ("?limit=100001", "limit"), ("?limit=ten", "limit"),
                               ("?limit=", "limit"), ("?camera=", "camera"), ("?topic=", "topic"),
                               ("?after=soon", "after"), ("?before=nan", "before"), ("?after=-5", "after"),
                               ("?camera=bad%20name", "camera"), ("?emotion=%3Cb%3E", "emotion"),
                               ("?topic=frame", "topic")]:
                reply = await client.get("/api/events" + query)
                assert reply.status == 400, query
                assert key in (await reply.json())["error"], query
    run(scenario)


async def _read_parts(response, count: int, timeout: float = 20.0) -> list[bytes]:
    parts, buffer = [], b""
    deadline = time.monotonic() + timeout
    while len(parts) < count:
        assert time.monotonic() < deadline, f"only {len(parts)} of {count} MJPEG parts"
        chunk = await asyncio.wait_for(response.content.readany(), timeout)
        assert chunk, "stream ended"
        buffer += chunk
        found, buffer = split_mjpeg(buffer)
        parts += found
    return parts


def test_mjpeg_stream_subscribes_frames_only_while_watched_and_encodes_once(tmp_path, fake_bus):
    async def scenario():
        async with console(web_settings(tmp_path), fake_bus.endpoint) as client:
            await wait_seen(client, fake_bus, "cam0")
            assert fake_bus.wants(protocol.RESULT_PREFIX + b"cam0")  # positive control: notices do arrive
            assert not fake_bus.wants(FRAME_TOPIC), "frames subscribed with nobody watching"

            first = await client.get("/api/cameras/cam0/stream?fps=30")
            assert first.status == 200
            assert first.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
            await until(lambda: fake_bus.wants(FRAME_TOPIC), 10, "frame subscription")
            second = await client.get("/api/cameras/cam0/stream?fps=30")
            assert second.status == 200
            # two smaller viewers whose heights round to the same 240 px share a third encoder; one asking for
            # more than the frame's 480 px shares the full-size one
            small = [await client.get(f"/api/cameras/cam0/stream?fps=30&height={height}")
                     for height in (235, 245)]
            large = await client.get("/api/cameras/cam0/stream?fps=30&height=600")
            assert all(reply.status == 200 for reply in (*small, large))

            seq = 0

            async def publish():
                nonlocal seq
                while True:
                    seq += 1
                    fake_bus.publish_pair("cam0", seq)
                    await asyncio.sleep(0.03)

            publisher = asyncio.create_task(publish())
            try:
                parts_a, parts_b, parts_large, *parts_small = await asyncio.gather(
                    _read_parts(first, 6), _read_parts(second, 6), _read_parts(large, 6),
                    *(_read_parts(reply, 6) for reply in small))
            finally:
                publisher.cancel()
            for jpeg in parts_small[0] + parts_small[1]:
                image = decode_jpeg(jpeg)
                assert image.shape == (240, 320, 3)
                half_box = tuple(v // 2 for v in FACE_BOX)
                assert box_drawn(image, half_box, EMOTION_COLORS["happy"]), "no box in the small stream"
            for jpeg in parts_a + parts_b + parts_large:
                image = decode_jpeg(jpeg)
                assert image.shape == (480, 640, 3)
            for jpeg in parts_a:
                assert box_drawn(decode_jpeg(jpeg), FACE_BOX, EMOTION_COLORS["happy"]), "no box in the stream"
                assert dots_drawn(decode_jpeg(jpeg), LANDMARKS, EMOTION_COLORS["happy"]), "no landmarks"
            assert decode_jpeg(parts_a[0]).tobytes() != decode_jpeg(parts_a[-1]).tobytes(), "frames do not change"
            stats = await (await client.get("/api/stats")).json()
            web_figures = stats["cameras"]["cam0"]["web"]
            assert web_figures["viewers"] == 5 and stats["web"]["streams"] == 5
            assert sorted(web_figures["encoded_heights"], key=str) == [240, None]
            assert web_figures["encoded_frames"] <= 2 * seq, "each frame is encoded once per size, not per viewer"
            assert stats["web"]["frame_subscriptions"] == ["cam0"]

            for reply in (first, second, large, *small):
                reply.close()
            await until(lambda: not fake_bus.wants(FRAME_TOPIC), 10, "frames unsubscribed after the last viewer")
            stats = await (await client.get("/api/stats")).json()
            assert stats["web"]["streams"] == 0 and stats["web"]["frame_subscriptions"] == []
    run(scenario)


def test_stream_bad_input_unknown_camera_and_stream_limit(tmp_path, fake_bus):
    async def scenario():
        async with console(web_settings(tmp_path, max_streams=1, max_stream_fps=20), fake_bus.endpoint) as client:
            await wait_seen(client, fake_bus, "cam0")
            for query in ("?fps=0", "?fps=-1", "?fps=21", "?fps=fast", "?fps=inf"):
                reply = await client.get("/api/cameras/cam0/stream" + query)
                assert reply.status == 400 and "fps" in (await reply.json())["error"], query
            for query in ("?height=8", "?height=5000", "?height=tall", "?height=1.5"):
                reply = await client.get("/api/cameras/cam0/stream" + query)
                assert reply.status == 400 and "height" in (await reply.json())["error"], query
            assert (await client.get("/api/cameras/nosuchcamera/stream")).status == 404
            assert (await client.get("/api/cameras/bad%20name/stream")).status == 400
            held = await client.get("/api/cameras/cam0/stream")
            assert held.status == 200
            refused = await client.get("/api/cameras/cam0/stream")
            assert refused.status == 503 and "max_streams" in (await refused.json())["error"]
            ws_refused = await client.get("/ws")
            assert ws_refused.status == 503
            await until(lambda: fake_bus.wants(FRAME_TOPIC), 10, "the held stream's frame subscription")
            held.close()
            await until(lambda: not fake_bus.wants(FRAME_TOPIC), 10, "the held stream to end")

            async def released():
                return (await (await client.get("/api/stats")).json())["web"]["streams"] == 0

            await until_async(released, 10, "the stream slot to be released")
            again = await client.get("/api/cameras/cam0/stream")
            assert again.status == 200
            again.close()
    run(scenario)


def test_an_unknown_api_path_is_a_json_404_never_a_camera_stream(tmp_path, fake_bus):
    """Cameras have their own prefix: a path missing from the route table (a typo, a route added without its entry)
    is the router's JSON 404, even when it names a camera the console knows."""
    async def scenario():
        async with console(web_settings(tmp_path), fake_bus.endpoint) as client:
            for camera in ("cam0", "history", "markers"):
                await wait_seen(client, fake_bus, camera)
            stream = await client.get("/api/cameras/history/stream")
            assert stream.status == 200, "positive control: a camera named like a route streams under its prefix"
            assert stream.content_type == "multipart/x-mixed-replace"
            stream.close()
            for path in ("/api/cam0", "/api/history", "/api/no-such-route", "/api/cam0/latest.jpg",
                         "/api/cameras/cam0", "/api/cameras/cam0/nothing", "/api/history/nothing"):
                reply = await client.get(path)
                assert reply.status == 404, path
                assert reply.content_type == "application/json", path
                assert (await reply.json())["status"] == 404, path
            post_only = await client.get("/api/markers")  # a route, for another method: 405, not a stream
            assert post_only.status == 405 and post_only.headers["Allow"] == "POST"
            assert (await post_only.json())["status"] == 405
    run(scenario)


def test_latest_jpg_annotated_raw_scaled_and_lease(tmp_path, fake_bus, monkeypatch):
    monkeypatch.setattr(media, "LEASE_SECONDS", 1.0)
    monkeypatch.setattr(media, "LATEST_WAIT_SECONDS", 1.0)

    async def scenario():
        async with console(web_settings(tmp_path), fake_bus.endpoint) as client:
            await wait_seen(client, fake_bus, "cam0")
            # no frames at all: a clear 503 after the wait
            fake_bus.result(face_result("cam9", 0))

            async def known_cam9():
                reply = await client.get("/api/cameras/cam9/latest.jpg")
                return reply if reply.status != 404 else fake_bus.result(face_result("cam9", 0))

            reply = await until_async(known_cam9, 10, "cam9 to be known")
            assert reply.status == 503 and "no frame" in (await reply.json())["error"]
            monkeypatch.setattr(media, "LATEST_WAIT_SECONDS", 5.0)  # frames come once the lease subscribes

            stop = asyncio.Event()

            async def publish():
                seq = 0
                while not stop.is_set():
                    seq += 1
                    fake_bus.publish_pair("cam0", seq)
                    await asyncio.sleep(0.03)

            publisher = asyncio.create_task(publish())
            try:
                annotated = await client.get("/api/cameras/cam0/latest.jpg")
                assert annotated.status == 200 and annotated.content_type == "image/jpeg"
                image = decode_jpeg(await annotated.read())
                assert image.shape == (480, 640, 3), "latest.jpg is full size by default"
                assert box_drawn(image, FACE_BOX, EMOTION_COLORS["happy"]), "latest.jpg is annotated by default"
                raw_reply = await client.get("/api/cameras/cam0/latest.jpg?bbox=0")
                raw = decode_jpeg(await raw_reply.read())
                seq = int(raw_reply.headers["X-Emotiond-Seq"])
                assert not box_drawn(raw, FACE_BOX, EMOTION_COLORS["happy"]), "bbox=0 is the raw frame"
                assert not dots_drawn(raw, LANDMARKS, EMOTION_COLORS["happy"]), "positive control for dots_drawn"
                assert np.abs(raw.astype(int) - scene_frame(seq)).mean() < 4, "the raw frame is the published one"
                small = decode_jpeg(await (await client.get("/api/cameras/cam0/latest.jpg?height=240")).read())
                assert small.shape == (240, 320, 3)
                assert box_drawn(small, tuple(v // 2 for v in FACE_BOX), EMOTION_COLORS["happy"]), "scaled boxes"
                for query, key in [("?bbox=2", "bbox"), ("?height=8", "height"), ("?height=big", "height"),
                                   ("?height=5000", "height")]:
                    reply = await client.get("/api/cameras/cam0/latest.jpg" + query)
                    assert reply.status == 400 and key in (await reply.json())["error"], query
                assert (await client.get("/api/cameras/nosuch/latest.jpg")).status == 404
                assert fake_bus.wants(FRAME_TOPIC)
            finally:
                stop.set()
                await publisher
            # the lease runs out: frames are no longer wanted
            await until(lambda: not fake_bus.wants(FRAME_TOPIC), 20, "the latest.jpg lease to end")
    run(scenario)


def test_websocket_topics_frames_and_bad_messages(tmp_path, fake_bus):
    async def scenario():
        async with console(web_settings(tmp_path), fake_bus.endpoint) as client:
            await wait_seen(client, fake_bus, "cam0")
            ws = await client.ws_connect("/ws", compress=15)
            assert ws.compress == 0, "frames are JPEG: the server declines permessage-deflate"
            hello = json.loads((await ws.receive(timeout=10)).data)
            assert hello["topic"] == "hello" and hello["payload"]["emotion_colors"]["angry"] == "#ff0000"
            assert "cam0" in hello["payload"]["cameras"]
            await ws.send_str(json.dumps({"watch": ["cam0", "nosuch"], "fps": 30, "heights": {"cam0": 242}}))
            await until(lambda: fake_bus.wants(FRAME_TOPIC), 10, "frame subscription from the socket")
            fake_bus.status("cam0", "up", "opened")
            texts: dict[str, list] = {}
            frames: list[bytes] = []
            seq = 0
            deadline = time.monotonic() + 20
            while not (frames and {"result", "event", "status", "message", "error"} <= set(texts)):
                assert time.monotonic() < deadline, f"topics so far: {sorted(texts)}, frames {len(frames)}"
                seq += 1
                fake_bus.publish_pair("cam0", seq, "happy" if seq < 5 else "sad")
                try:
                    message = await ws.receive(timeout=0.1)
                except TimeoutError:
                    continue
                if message.type.name == "BINARY":
                    frames.append(message.data)
                else:
                    item = json.loads(message.data)
                    texts.setdefault(item["topic"], []).append(item["payload"])
            assert "nosuch" in texts["error"][0]["error"]
            assert frames[0][0] == 4 and frames[0][1:5] == b"cam0"
            frame_seq = int.from_bytes(frames[0][5:13], "big")
            assert 1 <= frame_seq <= seq
            image = decode_jpeg(frames[0][13:])
            emotion = "happy" if frame_seq < 5 else "sad"
            half_box = tuple(v // 2 for v in FACE_BOX)  # the tile asked for 242 px: frames come at 240
            assert image.shape == (240, 320, 3) and box_drawn(image, half_box, EMOTION_COLORS[emotion])
            assert texts["status"][0]["state"] == "up"
            assert texts["event"][0] == {**texts["event"][0], "event": "changed", "previous": "happy", "emotion": "sad"}
            assert texts["message"][-1]["emotion"] == "sad" and texts["message"][-1]["text"]

            async def next_item(topic):
                """The next text message of a topic (frames and other topics sent meanwhile are skipped)."""
                while True:
                    message = await ws.receive(timeout=10)
                    if message.type.name == "TEXT" and (item := json.loads(message.data))["topic"] == topic:
                        return item["payload"]

            for bad in ("not json", "[1, 2]", json.dumps({"watch": "cam0"}), json.dumps({"watch": [], "fps": 0}),
                        json.dumps({"watch": ["cam0"], "heights": {"cam0": 8}}),
                        json.dumps({"watch": ["cam0"], "heights": {"cam0": "tall"}}),
                        json.dumps({"watch": ["cam0"], "heights": [240]}),
                        json.dumps({"topics": ["secrets"]}), json.dumps({"unknown": 1})):
                await ws.send_str(bad)
                assert (await next_item("error"))["error"], bad
            await ws.send_bytes(b"\x00")
            assert "binary" in (await next_item("error"))["error"]
            # only change events from now on, and no frames
            await ws.send_str(json.dumps({"topics": ["event"], "watch": []}))
            await until(lambda: not fake_bus.wants(FRAME_TOPIC), 10, "frames unsubscribed")
            fake_bus.result(face_result("cam0", seq + 1, "surprise"))
            assert (await next_item("event"))["emotion"] == "surprise"
            fake_bus.result(face_result("cam0", seq + 2, "neutral"))
            message = await ws.receive(timeout=10)
            assert message.type.name == "TEXT", "nothing but change events once asked"
            item = json.loads(message.data)
            assert item["topic"] == "event" and item["payload"]["emotion"] == "neutral"
            await ws.close()

            async def closed():
                return (await (await client.get("/api/stats")).json())["web"]["streams"] == 0

            await until_async(closed, 10, "the socket's stream slot to be released")
    run(scenario)
