"""The worker's micro-batcher: files wait briefly for batch-mates, live cameras never do."""

from __future__ import annotations

import numpy as np

from emotiond.workers.batcher import MicroBatcher, PendingFrame


def pending(faces: int) -> PendingFrame:
    detection = type("Detection", (), {"crops": np.zeros((faces, 48, 48, 1), np.float32)})()
    return PendingFrame(frame=None, detection=detection)  # type: ignore[arg-type]


def test_a_file_frame_waits_for_batch_mates_until_its_age_or_size_is_reached():
    batcher = MicroBatcher(max_batch=8, max_wait_s=0.005)
    batcher.add(pending(4), now=0.0, live=False)
    assert not batcher.due(0.001, more_may_arrive=True)
    assert batcher.due(0.006, more_may_arrive=True)
    assert batcher.due(0.001, more_may_arrive=False)
    batcher.add(pending(4), now=0.002, live=False)
    assert batcher.due(0.002, more_may_arrive=True)  # 8 faces: full


def test_live_frames_go_at_once_unless_a_file_frame_shares_the_batch():
    batcher = MicroBatcher(max_batch=8, max_wait_s=0.005)
    batcher.add(pending(1), now=0.0, live=True)
    assert batcher.due(0.0, more_may_arrive=True)
    assert len(batcher.take()) == 1
    batcher.add(pending(1), now=0.0, live=True)
    batcher.add(pending(1), now=0.0, live=False)
    assert not batcher.due(0.001, more_may_arrive=True)
    batcher.take()
    batcher.add(pending(1), now=0.0, live=False)  # take() started afresh: no live frame left behind
    assert not batcher.due(0.001, more_may_arrive=True)
