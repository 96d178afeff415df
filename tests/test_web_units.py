"""The web console's small parts: frame pacing, the stats quantiles, the outbox, and its place in the layers."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from test_layers import find_cycle, folder_of, import_graph, imported_names, level_of

from emotiond.clients.web.outbox import ViewerOutbox
from emotiond.clients.web.pacing import Pacer, RateMeter
from emotiond.clients.web.routes import load_static
from emotiond.clients.web.stats import histogram_quantile

from support.daemon import REPO


def passed(pacer: Pacer, times: list[float]) -> list[float]:
    return [t for t in times if pacer.ready(t)]


def test_pacer_keeps_the_rate_on_average_through_jitter():
    # a 30 fps source paced to 10 fps: every third frame
    source = [i / 30 for i in range(300)]
    assert len(passed(Pacer(10.0), source)) in (100, 101)
    # a 10 fps source with +-20 ms of jitter loses nothing at 10 fps
    jittered = [i / 10 + (0.02 if i % 2 else -0.02) for i in range(1, 101)]
    assert len(passed(Pacer(10.0), jittered)) == 100
    # and never runs faster than asked, however fast frames come
    assert len(passed(Pacer(5.0), [i / 1000 for i in range(10_000)])) <= 51
    # after a pause the schedule restarts instead of bursting to catch up
    pacer = Pacer(10.0)
    assert passed(pacer, [0.0, 0.1, 0.2]) == [0.0, 0.1, 0.2]
    assert passed(pacer, [10.0, 10.01, 10.02, 10.03]) == [10.0]


def test_rate_meter():
    meter = RateMeter(window=5.0)
    assert meter.rate(0.0) == 0.0
    for i in range(51):
        meter.add(i * 0.1)
    assert meter.rate(5.0) == pytest.approx(10.0, rel=0.05)
    assert meter.rate(100.0) == 0.0


def test_histogram_quantile_matches_prometheus():
    buckets = [(0.01, 10.0), (0.02, 60.0), (0.05, 90.0), (0.1, 100.0), (float("inf"), 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.018)  # 50th of 100: 40 of the 50 in (0.01, 0.02]
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.075)
    assert histogram_quantile(0.5, [(0.01, 0.0), (float("inf"), 0.0)]) is None
    assert histogram_quantile(0.99, [(0.01, 1.0), (float("inf"), 100.0)]) == 0.01  # in +Inf: the last bound


def test_outbox_keeps_the_newest_frame_and_bounds_messages():
    async def scenario():
        outbox = ViewerOutbox(max_texts=3)
        outbox.watch("cam0", 100.0)
        outbox.offer_frame("cam0", 1, b"one", 0.0)
        outbox.offer_frame("cam0", 2, b"two", 1.0)  # the client was slow: the older frame is replaced
        outbox.offer_frame("cam1", 1, b"unwatched", 1.0)
        for n in range(5):
            outbox.offer_text(str(n))
        texts, frames = await outbox.take()
        assert texts == ["2", "3", "4"] and outbox.dropped_texts == 2
        assert frames == [("cam0", 2, b"two")] and outbox.replaced_frames == 1
        assert await outbox.take(timeout=0.05) == ([], [])
        outbox.close()
        assert await outbox.take() == ([], [])

    asyncio.run(scenario())


def test_the_web_package_stays_in_the_clients_layer():
    """tests/test_layers.py walks the package's folders; this covers the web subpackage the same way."""
    folder = REPO / "clients" / "web"
    modules = {f"emotiond.clients.web.{p.stem}" if p.stem != "__init__" else "emotiond.clients.web": p
               for p in sorted(folder.glob("*.py"))}
    assert len(modules) > 10
    everything = import_graph(REPO)

    def layer_of(name: str) -> int:
        return level_of(folder_of(name, everything))

    graph = {}
    for module, path in modules.items():
        names = imported_names(Path(path), module)
        upward = [name for name in names if layer_of(name) > layer_of("emotiond.clients")]
        assert upward == [], f"{module} imports above the clients layer: {upward}"
        graph[module] = {name for name in names if name in modules and name != module}
    assert sum(len(targets) for targets in graph.values()) > 15, "positive control: the parser sees the imports"
    assert find_cycle(graph) is None
    assert layer_of("emotiond.training.x") == layer_of("emotiond.clients"), "positive control for the check above"
    role = imported_names(folder / "role.py", "emotiond.clients.web.role")
    assert not {n for n in role if n.startswith("emotiond.clients.web.") and "server" not in n}, \
        "role.py stays light: the command line imports it to list the role"


def test_the_page_ships_with_the_package_and_loads_nothing_from_elsewhere():
    static = load_static()
    assert {"index.html", "app.js", "style.css", "login.html"} <= set(static)
    for name, body in static.items():
        text = body.decode("utf-8")
        assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", text), f"{name} loads from another host"
        assert "import(" not in text and "@import" not in text, name
    page = static["index.html"].decode()
    for local in ("/static/app.js", "/static/style.css"):
        assert local in page, "positive control: the page's own files are referenced"
