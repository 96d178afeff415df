"""/api/stats' recent drop rate: what a camera loses between two reads of the daemon's counters."""

from __future__ import annotations

from emotiond.clients.web import stats


def figures(captured: int, **dropped: int) -> dict:
    return {"frames_captured": captured, "frames_dropped": dropped}


def test_recent_drop_rate_counts_only_the_frames_between_the_reads():
    before = {"cam0": figures(1000, stale=0), "cam1": figures(1000, stale=500)}
    after = {"cam0": figures(1100, stale=30, worker_lost=3), "cam1": figures(1100, stale=530), "cam2": figures(50)}
    # cam1 has dropped half its frames since start but 30% now; cam2 is new and has dropped none
    assert stats.recent_drop_rates(before, after) == {"cam0": 0.33, "cam1": 0.3, "cam2": 0.0}


def test_a_camera_without_new_frames_has_no_recent_rate():
    same = {"cam0": figures(1000, stale=10)}
    assert stats.recent_drop_rates(same, same) == {}
