"""The daemon's one start line about privacy: its mode, retention and where images go, so every log says it."""

from __future__ import annotations

from emotiond.core.settings import Settings


def _days(days: float) -> str:
    return f"{days:g} day" + ("" if days == 1 else "s")


def privacy_line(settings: Settings) -> str:
    """``privacy: <mode>; retention <...>; images <...>``."""
    privacy = settings.privacy
    if privacy.publish == "aggregates":
        mode = (f"aggregates only, every {privacy.window_seconds:g} s, windows under {privacy.min_group} faces "
                "suppressed")
        images = "none leave the workers"
    else:
        mode = f"per-face results, faces in images: {privacy.faces}"
        sinks = ["frame subscribers on the results bus (viewers)"]
        if settings.web.enabled:
            sinks.append("the web console")
        if settings.mqtt.enabled and settings.mqtt.snapshots:
            sinks.append("MQTT snapshots")
        images = f"only to {', '.join(sinks)}, faces {privacy.faces}; none recorded"
    retention = "each store's own" if privacy.retention_days is None else f"at most {_days(privacy.retention_days)}"
    return f"privacy: {mode}; retention {retention}; images {images}"
