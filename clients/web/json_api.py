"""The JSON API: health, cameras, recent events from the ring, and per-camera stats (the daemon's /metrics
figures read from its metric files, with the console's own)."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from aiohttp import web

from emotiond.clients.web import stats
from emotiond.clients.web.context import ANALYSIS, GUARD, HUB, STATS_CACHE, BadParameter, integer, number
from emotiond.clients.web.ring import TOPICS, Query
from emotiond.core.protocol import CAMERA_NAME_RE

EMOTION_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
STATS_CACHE_SECONDS = 1.0
MAX_EVENTS_LIMIT = 100_000  # the largest [web] events_ring


async def health(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    return web.json_response({"status": "ok", "uptime_s": round(time.monotonic() - hub.started_at, 1),
                              "cameras": len(hub.feeds), "results_received": hub.results_received})


async def cameras(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    now = time.monotonic()
    return web.json_response({"cameras": [hub.feeds[name].describe(now) for name in sorted(hub.feeds)]})


async def events(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    camera = request.query.get("camera")
    if camera is not None and not CAMERA_NAME_RE.match(camera):
        raise BadParameter(f"bad camera name {camera[:70]!r}")
    emotion = request.query.get("emotion")
    if emotion is not None and not EMOTION_RE.match(emotion):
        raise BadParameter(f"bad emotion {emotion[:70]!r}")
    topic = request.query.get("topic")
    if topic is not None and topic not in TOPICS:
        raise BadParameter(f"topic must be one of {', '.join(TOPICS)}")
    after = number(request, "after", None, 0, 1e11)
    before = number(request, "before", None, 0, 1e11)
    limit = integer(request, "limit", 100, 1, MAX_EVENTS_LIMIT)
    assert limit is not None
    limit = min(limit, hub.settings.web.events_ring)  # asking for more than the ring holds gets the whole ring
    found = hub.ring.query(Query(camera=camera, emotion=emotion, topic=topic, after=after, before=before,
                                 limit=limit))
    return web.json_response({"events": found, "count": len(found)})


async def stats_view(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    cache = request.app[STATS_CACHE]
    now = time.monotonic()
    if now - cache.get("at", -1e9) > STATS_CACHE_SECONDS:
        folder = hub.settings.bus.runtime_dir / "metrics"
        samples = await asyncio.get_running_loop().run_in_executor(None, stats.read_samples, folder)
        figures = stats.camera_figures(samples) if samples is not None else {}
        baseline = cache.get("baseline")
        if baseline is None or now - baseline[0] >= stats.RECENT_SECONDS:
            cache["recent"] = stats.recent_drop_rates(baseline[1], figures) if baseline else {}
            cache["baseline"] = (now, figures)
        cache.update(at=now, samples=samples, figures=figures)
    figures, samples = cache["figures"], cache["samples"]
    cameras_out: dict[str, Any] = {}
    for name in sorted(set(hub.feeds) | set(figures)):
        feed = hub.feeds.get(name)
        entry = {"fps": round(feed.fps(now), 2) if feed else 0.0, "status": feed.status if feed else "unknown"}
        entry.update(figures.get(name, {}))
        if name in cache["recent"]:
            entry["drop_rate_recent"] = cache["recent"][name]
        if feed is not None:
            entry["web"] = {"viewers": feed.viewers(), "encoded_heights": feed.sizes(), "encoded_frames": feed.encoded,
                            "encode_ms_mean": round(feed.encode_seconds / feed.encoded * 1000, 2)
                            if feed.encoded else None}
        cameras_out[name] = entry
    return web.json_response({
        "cameras": cameras_out,
        # Where the per-camera series came from: the daemon's metric files (how many samples, read how long ago),
        # or null when this runtime folder holds none (no local daemon).
        "metrics": {"samples": len(samples), "age_s": round(now - cache["at"], 1)} if samples is not None else None,
        "web": {"streams": hub.streams, "max_streams": hub.settings.web.max_streams,
                "frame_subscriptions": list(hub.frame_cameras), "results_received": hub.results_received,
                "frames_received": hub.frames_received, "bad_messages": dict(hub.bad_messages),
                "photos_analysed": request.app[ANALYSIS].analysed,
                "logins_failed": request.app[GUARD].failed_logins, "logins_refused": request.app[GUARD].limiter.refused,
                "uptime_s": round(now - hub.started_at, 1)},
    })
