"""The pass/fail limits of ``emotiond bench --quick``: what the README's performance claims rest on.

A run fails when a file-mode frame never reaches the subscriber, when recall against the true boxes or
agreement with fer falls below 0.95, or when emotiond is slower than fer (steady-state ratio below 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MIN_RECALL = 0.95
MIN_AGREEMENT = 0.95
MIN_RATIO = 1.0
MAX_LOST = 0


@dataclass(frozen=True)
class Check:
    video: str
    name: str
    value: float | int
    limit: float
    passed: bool
    bound: str  # "at least" or "at most"

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return f"{verdict} {self.video}: {self.name} {self.figure()} (must be {self.bound} {self.limit:g})"

    def figure(self) -> str:
        return f"{self.value:.3f}" if isinstance(self.value, float) else str(self.value)


def _at_least(video: str, name: str, value: float, limit: float) -> Check:
    return Check(video, name, value, limit, value >= limit, "at least")


def _at_most(video: str, name: str, value: float, limit: float) -> Check:
    return Check(video, name, value, limit, value <= limit, "at most")


def file_mode_checks(file_mode: dict[str, dict[str, Any]]) -> list[Check]:
    """Every check for every video of the report's ``file_mode`` section."""
    checks = []
    for video, entry in file_mode.items():
        ours = entry["emotiond"]
        checks += [
            _at_most(video, "lost frames", entry["lost"], MAX_LOST),
            _at_least(video, "recall", ours["recall"], MIN_RECALL),
            _at_least(video, "agreement with fer", ours["agreement_with_fer"], MIN_AGREEMENT),
            _at_least(video, "throughput ratio to fer", ours["ratio"], MIN_RATIO),
        ]
    return checks
