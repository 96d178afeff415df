"""The wire protocol: round trips, and rejection of everything malformed (property-based); the one Face value."""

from __future__ import annotations

import contextlib
import dataclasses
import json
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


LABELS = ["happy", "sad", "neutral"]


def face_strategy():
    """Faces with any mix of the optional fields and of keys this version does not know."""
    return st.builds(
        Face,
        box=st.tuples(st.integers(-50, 5000), st.integers(-50, 5000), st.integers(1, 5000), st.integers(1, 5000)),
        emotion=st.sampled_from(LABELS),
        confidence=st.floats(0, 1),
        scores=st.dictionaries(st.sampled_from(LABELS), st.floats(0, 1 / len(LABELS))),
        landmarks=st.none() | st.lists(st.tuples(*[st.floats(-1e3, 1e4)] * 2), min_size=1, max_size=6).map(tuple),
        track_id=st.none() | st.integers(0, 2**62),
        smoothed_emotion=st.none() | st.sampled_from(LABELS),
        smoothed_confidence=st.none() | st.floats(0, 1),
        extra=st.dictionaries(st.sampled_from(["age", "pose", "note"]),
                              st.integers(0, 99) | st.text(max_size=4) | st.lists(st.integers(0, 9), max_size=3)),
    )


def result_strategy():
    face = face_strategy()
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


# ---------------------------------------------------------------- the Face value

def every_field_face(**changes) -> Face:
    fields = {"box": (-3, 20, 100, 110), "emotion": "happy", "confidence": 0.9312,
              "scores": {"angry": 0.01, "happy": 0.9312, "sad": 0.0588},
              "landmarks": ((10.5, 20.0), (30.0, 40.1)), "track_id": 4201, "smoothed_emotion": "sad",
              "smoothed_confidence": 0.5123, "extra": {"age": 31}}
    return Face(**{**fields, **changes})


def test_a_face_with_every_field_round_trips_through_encode_and_decode():
    face = every_field_face()
    result = Result("cam0", 7, 1.5, 1.6, (640, 480), (face,), {"total": 3.0}, "w1", "m", {"ended_tracks": [3]})
    (decoded,) = protocol.decode(protocol.encode_result(result)).faces
    assert decoded == face
    assert (decoded.box, decoded.emotion, decoded.confidence, decoded.scores) == (
        (-3, 20, 100, 110), "happy", 0.9312, {"angry": 0.01, "happy": 0.9312, "sad": 0.0588})
    assert decoded.landmarks == ((10.5, 20.0), (30.0, 40.1)) and decoded.track_id == 4201
    assert (decoded.smoothed_emotion, decoded.smoothed_confidence, decoded.extra) == ("sad", 0.5123, {"age": 31})
    assert Face.from_dict(json.loads(json.dumps(face.to_dict()))) == face  # the JSON event line too
    plain = Face((1, 2, 3, 4), "sad", 0.8, {"sad": 0.8})
    assert protocol.decode(protocol.encode_result(dataclasses.replace(result, faces=(plain,)))).faces == (plain,)
    assert (plain.landmarks, plain.track_id, plain.smoothed_emotion, plain.smoothed_confidence, plain.extra) == (
        None, None, None, None, {})


def test_the_wire_map_keeps_its_keys_and_their_order():
    """Byte for byte what a Face with extras in a dict gave: unknown keys, then landmarks, track_id,
    smoothed_emotion, smoothed_confidence, then box, emotion, confidence, scores."""
    face = every_field_face()
    expected = {"age": 31, "landmarks": [[10.5, 20.0], [30.0, 40.1]], "track_id": 4201, "smoothed_emotion": "sad",
                "smoothed_confidence": 0.5123, "box": [-3, 20, 100, 110], "emotion": "happy", "confidence": 0.9312,
                "scores": {"angry": 0.01, "happy": 0.9312, "sad": 0.0588}}
    assert list(face.to_dict()) == list(expected) and face.to_dict() == expected
    result = Result("cam0", 7, 1.5, 1.6, (640, 480), (face, Face((5, 6, 7, 8), "sad", 0.8, {"sad": 0.8})),
                    {"total": 3.0}, "w1", "m")
    body = {"kind": "result", "v": 1, "camera": "cam0", "seq": 7, "captured_at": 1.5, "published_at": 1.6,
            "frame_size": [640, 480],
            "faces": [expected, {"box": [5, 6, 7, 8], "emotion": "sad", "confidence": 0.8, "scores": {"sad": 0.8}}],
            "latency_ms": {"total": 3.0}, "worker": "w1", "model": "m"}
    assert protocol.encode_result(result)[1] == msgpack.packb(body, use_bin_type=True)


def test_unknown_face_keys_from_a_newer_sender_are_kept_in_extra():
    body = {**VALID_RESULT_BODY, "faces": [{**VALID_RESULT_BODY["faces"][0], "age": 31, "pose": {"yaw": -4.5},
                                            "track_id": 12}]}
    (face,) = protocol.decode([b"result.cam0", msgpack.packb(body), b""]).faces
    assert face.track_id == 12 and face.extra == {"age": 31, "pose": {"yaw": -4.5}}
    assert face.to_dict()["pose"] == {"yaw": -4.5} and "track_id" not in face.extra


GOOD_WIRE_FACE = {"box": [1, 2, 30, 40], "emotion": "happy", "confidence": 0.9, "scores": {"happy": 0.9, "sad": 0.1}}


@pytest.mark.parametrize(("changes", "refused"), [
    ({}, False),
    ({"box": [-5, -7, 30, 40]}, False),  # a face at the frame's top-left edge
    ({"scores": {}}, False),
    ({"scores": {"happy": 0.9, "sad": 0.105}}, False),  # rounding: within the tolerance
    ({"track_id": 0, "smoothed_emotion": "sad", "smoothed_confidence": 0.0}, False),
    ({"landmarks": [[1, 2.5]]}, False),
    ({"box": [1, 2, -30, 40]}, True),
    ({"box": [1, 2, 30, 0]}, True),
    ({"box": [1, 2, 30]}, True),
    ({"box": [1, 2, 30.0, 40]}, True),
    ({"box": [1, 2, True, 40]}, True),
    ({"box": "1,2,30,40"}, True),
    ({"box": [10**7, 2, 30, 40]}, True),
    ({"box": ...}, True),
    ({"emotion": ""}, True),
    ({"emotion": 3}, True),
    ({"emotion": "x" * 65}, True),
    ({"confidence": 1.5}, True),
    ({"confidence": -0.1}, True),
    ({"confidence": float("nan")}, True),
    ({"confidence": "0.9"}, True),
    ({"confidence": ...}, True),
    ({"scores": {"happy": 0.9, "sad": 0.9}}, True),  # not one distribution: sums to 1.8
    ({"scores": {"happy": 1.2}}, True),
    ({"scores": {"happy": -0.1}}, True),
    ({"scores": {"happy": "0.9"}}, True),
    ({"scores": {"happy": float("inf")}}, True),
    ({"scores": [0.9]}, True),
    ({"scores": {f"l{i}": 0.01 for i in range(65)}}, True),
    ({"track_id": -1}, True),
    ({"track_id": "7"}, True),
    ({"track_id": 7.0}, True),
    ({"track_id": None}, True),
    ({"smoothed_emotion": 1}, True),
    ({"smoothed_emotion": ""}, True),
    ({"smoothed_confidence": 2.0}, True),
    ({"smoothed_confidence": "high"}, True),
    ({"landmarks": []}, True),
    ({"landmarks": [[1.0, float("nan")]]}, True),
])
def test_a_malformed_face_is_refused_on_the_wire_and_when_built(changes, refused):
    wire = {**GOOD_WIRE_FACE, **changes}
    wire = {k: v for k, v in wire.items() if v is not ...}
    body = {**VALID_RESULT_BODY, "faces": [wire]}
    parts = [b"result.cam0", msgpack.packb(body), b""]
    if not refused:
        (face,) = protocol.decode(parts).faces
        assert Face.from_dict(face.to_dict()) == face
        return
    with pytest.raises(ProtocolError) as on_the_wire:
        protocol.decode(parts)
    assert on_the_wire.value.reason == "bad_header"
    with pytest.raises(ProtocolError, match="bad_header"):
        Face.from_dict(wire)
    fields = {k: tuple(v) if k == "box" and isinstance(v, list) else v for k, v in wire.items()}
    if set(protocol.FACE_KEYS) <= set(fields) and None not in fields.values():
        with pytest.raises(ProtocolError, match="bad_header"):  # the constructor checks what the decoder does
            Face(**fields)


def test_a_face_normalizes_numbers_and_refuses_known_keys_in_extra():
    face = Face(np.array([1, 2, 3, 4], np.int32), "happy", np.float32(0.5), {"happy": np.float64(0.5)},
                landmarks=np.array([[1.5, 2.0]], np.float32), track_id=np.int64(9), smoothed_confidence=1)
    assert face.box == (1, 2, 3, 4) and all(type(v) is int for v in face.box)
    assert type(face.confidence) is float and type(face.scores["happy"]) is float
    assert face.landmarks == ((1.5, 2.0),) and type(face.track_id) is int and face.smoothed_confidence == 1.0
    assert msgpack.unpackb(msgpack.packb(face.to_dict()))["box"] == [1, 2, 3, 4]
    with pytest.raises(ProtocolError, match="track_id"):
        Face((1, 2, 3, 4), "happy", 0.9, {}, extra={"track_id": 3})
    with pytest.raises(TypeError):  # the optional fields are keywords: a dict in fifth place is a mistake
        Face((1, 2, 3, 4), "happy", 0.9, {}, {"track_id": 3})
