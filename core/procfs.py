"""Readings of Linux /proc for the supervisor's tools, the tests, the soak run and the benchmarks: which
processes belong to a daemon, which role each plays, and what CPU, memory and file descriptors they use.
Vanished processes read as absent or zero, never as errors, because daemons restart children at any moment."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from emotiond.core.lifecycle import TITLE_PREFIX

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3, the state, is index 0)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def session_pids(session: int) -> list[int]:
    """Live (non-zombie) processes of a session, e.g. a daemon started with start_new_session=True."""
    found = []
    for pid in _all_pids():
        fields = _stat(pid)
        if fields is not None and int(fields[3]) == session and fields[0] != "Z":
            found.append(pid)
    return found


def descendants(pid: int) -> list[int]:
    """Children, grandchildren and so on of ``pid`` (not ``pid`` itself)."""
    parents = {}
    for candidate in _all_pids():
        fields = _stat(candidate)
        if fields is not None:
            parents[candidate] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found += children
        frontier += children
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs: it exists and is not a zombie (exited, not yet reaped)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def command_line(pid: int) -> str | None:
    """What ps shows as a process's command: its arguments joined by spaces, or the title it gave itself
    (``emotiond: worker w1``); empty for a zombie, None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None


def roles(pids: Iterable[int]) -> dict[int, str]:
    """The role each live process among ``pids`` names in its title (``lifecycle.process_title``):
    ``emotiond: worker w1`` reads ``worker w1``, ``emotiond: capture`` ``capture``. A process that has not named
    itself yet (just spawned), has exited or is no emotiond process is left out."""
    found = {}
    for pid in pids:
        title = command_line(pid)
        if title is not None and title.startswith(TITLE_PREFIX) and alive(pid):
            found[pid] = title[len(TITLE_PREFIX):]
    return found


def cpu_seconds(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS if fields else 0.0


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kb(pid: int) -> int:
    return _status_kb(pid, "VmRSS")


def peak_rss_kb(pid: int) -> int:
    return _status_kb(pid, "VmHWM")


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0
