"""The notice a deployer shows the people a camera films (AI Act Art. 50(3)), built from the settings.

One source of truth for the sign (``emotiond privacy notice``) and the console's ``/privacy`` page: each section
is derived from the settings that decide it (``[privacy]``, ``[history]``, ``[web]``, ``[mqtt]``), so the notice
cannot promise what the configuration does not do. The daemon's own start line is daemon/privacy.py.
"""

from __future__ import annotations

import html
import textwrap
from dataclasses import dataclass

from emotiond.clients.privacy.retention import capped_history
from emotiond.core.settings import Settings

TITLE = "Emotion recognition in use"
UNSET = "not stated: set [privacy] {key} in the configuration"
FACES_WORDS = {"show": "with faces visible", "solid": "with every face covered by a solid block",
               "blur": "with every face blurred", "mosaic": "with every face pixelated"}


@dataclass(frozen=True)
class Notice:
    """Headings and their paragraphs, in the order a sign shows them."""

    title: str
    sections: tuple[tuple[str, str], ...]


def _days(days: float) -> str:
    return f"{days:g} day" + ("" if days == 1 else "s")


def _inferred(settings: Settings) -> str:
    privacy = settings.privacy
    text = ("A camera system here finds faces in the video and infers from each face's expression which emotion it "
            "shows (angry, disgusted, fearful, happy, sad, surprised or neutral), by machine learning, on this "
            "site's own computer. It does not recognise who you are, and an expression is not proof of a feeling.")
    if privacy.publish == "aggregates":
        return text + (f" Only totals leave the analysis: per camera and per {privacy.window_seconds:g} seconds, how "
                       f"many faces were seen and the share of each emotion; a period with fewer than "
                       f"{privacy.min_group} faces is withheld.")
    return text + (" Each face is followed while it stays in view (as an anonymous number, not a name), with its "
                   "position in the picture and its emotion scores.")


def _kept(settings: Settings) -> str:
    privacy = settings.privacy
    cap = privacy.retention_days
    parts = ["No video or photo is recorded."]
    if privacy.publish == "aggregates":
        parts.append("Nothing about an individual face is stored: only the totals described above.")
        if cap is not None:
            parts.append(f"Logs of those totals are kept for at most {_days(cap)}.")
        return " ".join(parts)
    if settings.history.enabled:
        history = capped_history(settings)
        parts.append(f"Each face's visit (when it appeared and left, and its changes of emotion) is kept for "
                     f"{_days(history.events_days)}, its emotion scores (up to {history.sample_hz:g} a second) for "
                     f"{_days(history.samples_days)}; per-minute counts per camera, which describe no one, are kept "
                     "without limit.")
        if history.cameras:
            parts.append("Some cameras keep less (see the configuration).")
    else:
        parts.append("No emotion history is stored.")
    if cap is not None:
        parts.append(f"Result logs, where the operator keeps them, are deleted after at most {_days(cap)}.")
    if settings.web.enabled:
        ring = "" if cap is None else f", none older than {_days(cap)}"
        parts.append(f"The operator's console holds the latest {settings.web.events_ring} results in memory{ring}.")
    return " ".join(parts)


def _images(settings: Settings) -> str:
    privacy = settings.privacy
    if privacy.publish == "aggregates":
        return "No image leaves the analysis: each frame is analysed in memory and discarded."
    where = ["a live viewer the operator may open on this computer"]
    if settings.web.enabled:
        where.append("the operator's web console, behind its login")
    if settings.mqtt.enabled and settings.mqtt.snapshots:
        where.append("snapshots sent to the operator's MQTT broker")
    return (f"Each frame is analysed in memory and then discarded. Live images, {FACES_WORDS[privacy.faces]}, go "
            f"only to {', '.join(where)}.")


def build_notice(settings: Settings) -> Notice:
    """The notice for these settings."""
    privacy = settings.privacy
    return Notice(TITLE, (
        ("Who runs it", privacy.operator or UNSET.format(key="operator")),
        ("Why", privacy.purpose or UNSET.format(key="purpose")),
        ("What is inferred", _inferred(settings)),
        ("What is kept, and for how long", _kept(settings)),
        ("Where images go", _images(settings)),
        ("Whom to contact", (privacy.contact or UNSET.format(key="contact"))
         + " (to ask what is held about you, to have it erased, or to object)."),
    ))


def render_text(notice: Notice, width: int = 78) -> str:
    """Plain text for a sign, wrapped at ``width`` columns."""
    lines = [notice.title, "=" * len(notice.title), ""]
    for heading, body in notice.sections:
        lines += [heading, textwrap.fill(body, width), ""]
    return "\n".join(lines)


def render_html(notice: Notice) -> str:
    """A printable page: one A4 sheet, no script, no outside resources."""
    body = "".join(f"<h2>{html.escape(heading)}</h2>\n<p>{html.escape(text)}</p>\n"
                   for heading, text in notice.sections)
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(notice.title)}</title>\n<style>"
            "body{font-family:sans-serif;max-width:42em;margin:2em auto;line-height:1.4;padding:0 1em}"
            "h1{font-size:2em;border-bottom:3px solid #000}h2{font-size:1.2em;margin-bottom:.2em}"
            "@media print{body{margin:0}@page{size:A4;margin:2cm}}"
            f"</style></head>\n<body>\n<h1>{html.escape(notice.title)}</h1>\n{body}</body></html>\n")

