"""The wire protocol: round trips, and rejection of everything malformed (property-based)."""

from __future__ import annotations

import contextlib
import math
from collections import Counter

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emotiond.core import protocol
from emotiond.core.protocol import Control, Face, FrameHeader, ProtocolError, Result, Status

cameras = st.from_regex(r"[A-Za-z0-9_-]{1,16}", fullmatch=True)
seqs = st.integers(min_value=0, max_value=2**40)
stamps = st.floats(min_value=0, max_value=4e9, allow_nan=False)


def result_strategy():
    face = st.builds(
        Face,
        box=st.tuples(*[st.integers(-50, 5000)] * 4),
        emotion=st.sampled_from(["happy", "sad", "neutral"]),
        confidence=st.floats(0, 1),
        scores=st.dictionaries(st.sampled_from(["happy", "sad", "neutral"]), st.floats(0, 1)),
    )
    return st.builds(
        Result, camera=cameras, seq=seqs, captured_at=stamps, published_at=stamps,
        frame_size=st.tuples(st.integers(1, 8000), st.integers(1, 8000)),
        faces=st.lists(face, max_size=5).map(tuple),
        latency_ms=st.dictionaries(st.sampled_from(["total", "detect", "classify"]), st.floats(0, 1e4)),
        worker=st.text(max_size=10), model=st.text(max_size=20),
    )


@given(result_strategy())
def test_result_round_trip(result: Result):
    decoded = protocol.decode(protocol.encode_result(result))
    assert decoded == result
    assert protocol.result_from_dict(result.to_dict()) == result


@given(cameras, seqs, stamps, st.integers(1, 40), st.integers(1, 40), st.sampled_from([1, 3]))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_raw_frame_round_trip(camera, seq, stamp, height, width, channels):
    pixels = np.random.default_rng(seq % 1000).integers(0, 255, (height, width, channels), dtype=np.uint8)
    header = FrameHeader(camera, seq, stamp, (height, width, channels))
    parts = [bytes(p) for p in protocol.encode_frame(header, pixels)]
    frame = protocol.decode(parts)
    assert isinstance(frame, protocol.Frame)
    assert frame.header == header
    assert np.array_equal(frame.pixels, pixels)


def test_jpeg_frame_round_trip():
    pixels = np.full((48, 64, 3), 120, np.uint8)
    header = FrameHeader("cam0", 7, 1.5, (48, 64, 3), "jpeg")
    frame = protocol.decode([bytes(p) for p in protocol.encode_frame(header, pixels)])
    assert frame.header.encoding == "jpeg" and frame.pixels.shape == (48, 64, 3)
    assert np.abs(frame.pixels.astype(int) - 120).max() < 4


@given(cameras, st.sampled_from(protocol.STATUS_STATES), st.text(max_size=50), stamps, seqs)
def test_status_and_control_round_trip(camera, state, message, stamp, seq):
    status = Status(camera, state, message, stamp, seq)
    assert protocol.decode(protocol.encode_status(status)) == status
    control = Control("done", "w1", 1234, 1, camera, seq)
    assert protocol.decode(protocol.encode_control(control)) == control


def _frame_parts(**changes):
    body = {"v": 1, "kind": "frame", "camera": "cam0", "seq": 1, "captured_at": 1.0, "shape": [2, 2, 3],
            "dtype": "uint8", "encoding": "raw"}
    body.update(changes)
    body = {k: v for k, v in body.items() if v is not ...}
    return [b"frame.cam0", msgpack.packb(body), bytes(12)]


@pytest.mark.parametrize(("parts", "reason"), [
    ([b"frame.cam0", b"x"], "bad_parts"),
    ([b"frame.cam0", b"\xc1\xc1", b""], "bad_msgpack"),
    ([b"frame.cam0", msgpack.packb([1, 2]), b""], "bad_header"),
    (_frame_parts(v=2), "bad_version"),
    (_frame_parts(v=True), "bad_version"),
    (_frame_parts(seq=-1), "bad_header"),
    (_frame_parts(seq="1"), "bad_header"),
    (_frame_parts(captured_at=float("nan")), "bad_header"),
    (_frame_parts(shape=[2, 2]), "bad_shape"),
    (_frame_parts(shape=[2, 2, 4]), "bad_shape"),
    (_frame_parts(shape=[100000, 100000, 3]), "bad_shape"),
    (_frame_parts(shape=[3, 2, 3]), "bad_payload"),
    (_frame_parts(encoding="png"), "bad_header"),
    (_frame_parts(camera="other"), "bad_header"),
    (_frame_parts(kind="result"), "bad_kind"),
    (_frame_parts(camera=...), "bad_header"),
    ([b"frame.bad name", msgpack.packb({"v": 1}), b""], "bad_topic"),
    ([b"video.cam0", msgpack.packb({"v": 1, "camera": "cam0"}), b""], "bad_topic"),
    ([b"ctl", msgpack.packb({"v": 1, "kind": "explode", "worker": "w", "pid": 1, "credits": 0,
                             "camera": "", "seq": -1}), b""], "bad_kind"),
])
def test_malformed_messages_are_rejected_with_a_reason(parts, reason):
    with pytest.raises(ProtocolError) as error:
        protocol.decode(parts)
    assert error.value.reason == reason


def test_oversized_frames_are_refused_by_the_pixel_limit():
    parts = _frame_parts(shape=[64, 64, 3])
    parts[2] = bytes(64 * 64 * 3)
    with pytest.raises(ProtocolError, match="bad_shape"):
        protocol.decode(parts, max_frame_pixels=1000)


@given(st.lists(st.binary(max_size=200), min_size=0, max_size=5))
def test_arbitrary_bytes_never_escape_as_other_exceptions(parts):
    with contextlib.suppress(ProtocolError):
        protocol.decode(parts)


VALID_RESULT_BODY = {"v": 1, "kind": "result", "camera": "cam0", "seq": 5, "captured_at": 1.5, "published_at": 1.6,
                     "frame_size": [640, 480],
                     "faces": [{"box": [1, 2, 30, 40], "emotion": "happy", "confidence": 0.9,
                                "scores": {"happy": 0.9}}],
                     "latency_ms": {"total": 3.0}, "worker": "w1", "model": "m"}
# Values that fit some field and not others: most replacements break the message, many keep it valid.
ANY_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(),
                      st.floats(0, 4e9), st.text(max_size=5), st.lists(st.integers(-1000, 1000), max_size=4),
                      st.lists(st.integers(1, 5000), min_size=2, max_size=2),
                      st.dictionaries(st.text(max_size=3), st.integers(-1000, 1000), max_size=3), st.just([]))


def test_result_headers_with_one_field_changed_are_rejected_or_well_typed():
    """From a valid result, one field replaced (or removed): the decoder refuses it with a reason, or returns a
    Result whose fields have the documented types. Both outcomes must occur, or the check proves nothing."""
    outcomes: Counter = Counter()

    @settings(max_examples=600, deadline=None, database=None, derandomize=True)
    @given(st.sampled_from(sorted(VALID_RESULT_BODY)), st.one_of(ANY_VALUE, st.just(...)))
    def check(key, value):
        body = {**VALID_RESULT_BODY, key: value}
        if value is ...:
            del body[key]
        try:
            result = protocol.decode([b"result.cam0", msgpack.packb(body), b""])
        except ProtocolError as exc:
            outcomes[exc.reason] += 1
            return
        outcomes["accepted"] += 1
        assert isinstance(result, Result) and result.camera == "cam0"
        assert isinstance(result.seq, int) and not isinstance(result.seq, bool) and result.seq >= 0
        assert all(isinstance(v, float) and math.isfinite(v) and v >= 0
                   for v in (result.captured_at, result.published_at))
        assert len(result.frame_size) == 2 and all(isinstance(v, int) and v > 0 for v in result.frame_size)
        assert all(isinstance(f, Face) and len(f.box) == 4 for f in result.faces)
        assert all(isinstance(v, float) for v in result.latency_ms.values())
        assert isinstance(result.worker, str) and isinstance(result.model, str)

    check()
    print(f"one field changed: {dict(outcomes)}")
    assert protocol.decode([b"result.cam0", msgpack.packb(VALID_RESULT_BODY), b""]).seq == 5  # the base is valid
    assert outcomes["accepted"] >= 30, outcomes
    assert outcomes["bad_header"] >= 100 and outcomes["bad_version"] and outcomes["bad_kind"], outcomes


def test_jpeg_larger_than_its_header_is_refused_before_decoding():
    import cv2

    ok, big = cv2.imencode(".jpg", np.zeros((200, 300, 3), np.uint8))
    assert ok and protocol.jpeg_size(big.tobytes()) == (200, 300)
    parts = [bytes(p) for p in protocol.encode_frame(FrameHeader("cam0", 1, 1.0, (20, 30, 3), "jpeg"),
                                                     np.zeros((20, 30, 3), np.uint8))]
    parts[2] = big.tobytes()
    with pytest.raises(ProtocolError, match="bad_payload"):
        protocol.decode(parts)
    assert protocol.jpeg_size(b"not a jpeg") is None
