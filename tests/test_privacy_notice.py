"""The privacy notice: ``emotiond privacy notice`` as text and printable HTML from the settings, and the same page at
the console's ``/privacy``, open to anyone while everything else asks for a login. Each section follows the
setting that decides it, so the notice cannot promise what the configuration does not do."""

from __future__ import annotations

import re

import pytest

from emotiond.clients.privacy.notice import build_notice, render_html, render_text
from emotiond.core.settings import load_settings

from support.daemon import REPO, child_env, run_cli
from support.web import FakeBus, console, run

TOKEN = "correct-horse-battery-staple-42"
DEPLOYER = {"operator": "Corner Bakery Ltd <b>, 12 Mill Street", "contact": "privacy@bakery.example",
            "purpose": "How customers take to the new window display."}


def settings(tmp_path, privacy=None, **sections):
    return load_settings(None, {"bus": {"runtime_dir": str(tmp_path / "rt")},
                                "privacy": {**DEPLOYER, **(privacy or {})}, **sections})


def section(notice, heading: str) -> str:
    return dict(notice.sections)[heading]


def test_each_section_follows_its_settings(tmp_path):
    faces = build_notice(settings(tmp_path, {"faces": "solid", "retention_days": 30},
                                  web={"enabled": True, "events_ring": 500}))
    assert section(faces, "Who runs it") == DEPLOYER["operator"]
    assert section(faces, "Why") == DEPLOYER["purpose"]
    assert section(faces, "Whom to contact").startswith(DEPLOYER["contact"])
    kept = section(faces, "What is kept, and for how long")
    assert "visit" in kept and "for 30 days" in kept and "for 7 days" in kept, kept  # events capped, samples under
    assert "at most 30 days" in kept and "latest 500 results in memory, none older than 30 days" in kept
    images = section(faces, "Where images go")
    assert "every face covered by a solid block" in images and "web console" in images
    assert "anonymous number" in section(faces, "What is inferred")

    aggregates = build_notice(settings(tmp_path, {"publish": "aggregates", "min_group": 7, "window_seconds": 300},
                                       history={"enabled": False}))
    assert "No image leaves the analysis" in section(aggregates, "Where images go")
    inferred = section(aggregates, "What is inferred")
    assert "per 300 seconds" in inferred and "fewer than 7 faces is withheld" in inferred
    assert "Nothing about an individual face is stored" in section(aggregates, "What is kept, and for how long")
    bare = build_notice(load_settings(None, {"history": {"enabled": False}}))
    assert section(bare, "Who runs it").startswith("not stated: set [privacy] operator")
    assert "No emotion history is stored." in section(bare, "What is kept, and for how long")
    assert "kept for 90 days" in section(build_notice(load_settings(None, {})), "What is kept, and for how long")


def test_the_command_prints_text_and_printable_html(tmp_path):
    config = tmp_path / "emotiond.toml"
    config.write_text('[privacy]\noperator = "Corner Bakery Ltd <b>, 12 Mill Street"\nretention_days = 14\n'
                      'faces = "blur"\n')
    env = child_env(tmp_path / "run")
    text = run_cli("privacy", "notice", "--config", str(config), env=env)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("Emotion recognition in use\n")
    assert "Corner Bakery Ltd <b>, 12 Mill Street" in text.stdout and "14 days" in text.stdout
    assert max(len(line) for line in text.stdout.splitlines()) <= 78
    page = run_cli("privacy", "notice", "--config", str(config), "--format", "html", env=env)
    assert page.returncode == 0 and page.stdout.startswith("<!doctype html>")
    assert "Corner Bakery Ltd &lt;b&gt;, 12 Mill Street" in page.stdout and "<b>" not in page.stdout
    assert "<script" not in page.stdout and "@media print" in page.stdout and "blurred" in page.stdout
    bad = run_cli("privacy", "notice", "--format", "pdf", env=env)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


@pytest.fixture
def fake_bus(tmp_path):
    bus_ = FakeBus(f"ipc://{tmp_path}/results.sock")
    yield bus_
    bus_.close()


def test_the_console_shows_the_notice_without_login(tmp_path, fake_bus):
    configured = settings(tmp_path, {"retention_days": 3},
                          web={"token": TOKEN, "users_file": str(tmp_path / "state" / "web-users.json")})

    async def scenario():
        async with console(configured, fake_bus.endpoint) as client:
            page = await client.get("/privacy", allow_redirects=False)
            assert page.status == 200 and page.content_type == "text/html"
            body = await page.text()
            assert body == render_html(build_notice(configured))
            assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
            home = await client.get("/", allow_redirects=False)  # positive control: the rest needs a login
            assert home.status == 303 and home.headers["Location"] == "/login"
            assert (await client.get("/api/events")).status == 401

    run(scenario)
    assert render_text(build_notice(configured)).count("3 days") >= 2


def test_the_documented_presets_load_and_the_documented_notice_is_what_they_print(tmp_path):
    docs = (REPO / "docs" / "privacy.md").read_text()
    section = docs.split("\n## 3. Presets\n", 1)[1].split("\n## ", 1)[0]
    presets = re.findall(r"### (.+?)\n[^#]*?```toml\n(.*?)```", section, re.S)
    assert [name for name, _ in presets] == ["Home", "Shop floor / public space", "Research with consent"]
    loaded = {}
    for name, text in presets:
        path = tmp_path / f"{len(loaded)}.toml"
        path.write_text(text)
        loaded[name] = load_settings(path)
    assert loaded["Shop floor / public space"].privacy.publish == "aggregates"
    shown = re.findall(r"With the shop-floor preset it prints:\n\n```text\n(.*?)```", docs, re.S)[0]
    assert render_text(build_notice(loaded["Shop floor / public space"])) == shown
    assert "not legal advice" in docs
