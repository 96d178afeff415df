"""What ``emotiond events`` says when it hears nothing: one stderr line per silent stretch, naming the endpoint
it listens on, with a hint when no daemon's socket is there at all.

A subscriber cannot tell "no daemon" from "a daemon with nothing to say" on the wire (ZeroMQ connects quietly to
an address nobody binds), so it says where it listened, and looks at the ipc socket file when it can.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

NOTICE_AFTER_SECONDS = 3.0
EXIT_NOTHING_HEARD = 3  # --timeout ended and not one message arrived (2 stays the usage-error status)
START_HINT = ("start one with `emotiond run --source demo --realtime --loop`, or point here with --connect "
              "or --runtime-dir")


def silence_line(endpoint: str, seconds: float) -> str:
    """The notice for ``seconds`` of silence on ``endpoint``."""
    line = f"emotiond events: nothing heard for {seconds:.0f} s on {endpoint}"
    if endpoint.startswith("ipc://"):
        socket_file = Path(endpoint[len("ipc://"):])
        if not socket_file.exists():
            return f"{line}; no daemon socket at {socket_file} yet: {START_HINT}"
        return f"{line} (a daemon's socket is there: is it still loading, or are its sources idle?)"
    return f"{line} (is a daemon publishing there?)"


class SilenceNotice:
    """Writes ``silence_line`` once after ``after`` seconds without a message, and again only after a message
    has broken the silence."""

    def __init__(self, endpoint: str, after: float = NOTICE_AFTER_SECONDS, stream: TextIO | None = None):
        self.endpoint = endpoint
        self.after = after
        self._stream = stream
        self._said = False

    def check(self, silent_for: float) -> None:
        """Call while waiting, with the seconds since the last message (or since subscribing)."""
        if silent_for >= self.after and not self._said:
            self.say(silent_for)

    def heard(self) -> None:
        self._said = False

    def say(self, silent_for: float) -> None:
        stream = self._stream or sys.stderr
        stream.write(silence_line(self.endpoint, silent_for) + "\n")
        stream.flush()
        self._said = True

    def at_exit(self, silent_for: float, received: int) -> None:
        """A run that ends having heard nothing says where it listened, even before ``after``."""
        if received == 0 and not self._said:
            self.say(silent_for)
