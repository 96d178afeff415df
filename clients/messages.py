"""Emotion-specific message lines for the viewer.

The lines live in ``config/messages.json`` (a map of emotion label to a list of lines) so they can be
edited or translated without touching code. A line is picked at random only when the dominant emotion
changes; picking on every frame would make the text flicker at the frame rate.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

from emotiond.core.errors import UsageError
from emotiond.core.protocol import Face
from emotiond.core.settings import shipped_config


def load_messages(path: Path | None = None) -> dict[str, list[str]]:
    """Read and check a messages file; a broken file is a usage error, not a crash mid-stream."""
    path = path or shipped_config("messages.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read messages file {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"messages file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and v and all(isinstance(s, str) for s in v)
            for k, v in data.items()):
        raise UsageError(f"messages file {path} must map each emotion to a non-empty list of strings")
    return {label: list(lines) for label, lines in data.items()}


def dominant_emotion(faces: Sequence[Face]) -> str | None:
    """The emotion of the most confident face (the one a viewer most likely looks at).

    When the daemon tracks faces, the track's smoothed emotion is used: it does not flip on single noisy
    frames, so neither does the message.
    """
    if not faces:
        return None
    face = max(faces, key=lambda f: (f.confidence, f.box[2] * f.box[3]))
    return face.smoothed_emotion or face.emotion


class MessagePicker:
    """Keeps one message per dominant emotion until that emotion changes."""

    def __init__(self, messages: Mapping[str, Sequence[str]], rng: random.Random | None = None):
        self._messages = messages
        self._rng = rng or random.Random()
        self._emotion: str | None = None
        self._line = ""

    def update(self, emotion: str | None) -> str:
        """The line to show for this frame's dominant emotion (empty when there is no face).

        A frame without faces hides the line but keeps the choice, so a face missed by the detector for
        one frame does not reshuffle the text.
        """
        if emotion is None:
            return ""
        if emotion != self._emotion:
            self._emotion = emotion
            lines = self._messages.get(emotion, ())
            self._line = self._rng.choice(list(lines)) if lines else ""
        return self._line
