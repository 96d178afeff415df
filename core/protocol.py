"""The emotiond wire protocol: the only place messages are built and parsed.

Every message is three ZeroMQ frames: ``[topic, header, payload]``.

* ``topic`` is ASCII: ``frame.<camera>``, ``result.<camera>``, ``status.<camera>``, ``tracks.<camera>``,
  ``aggregate.<camera>`` or ``ctl``.
* ``header`` is a msgpack map that always holds ``v`` (protocol version) and ``kind``.
* ``payload`` is raw bytes: pixels for frames, empty for everything else.

Decoding validates version, types, sizes and the frame shape against the payload length, and raises
ProtocolError with a short ``reason`` that callers count in metrics. See docs/protocol.md.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Literal

import msgpack
import numpy as np

from emotiond.core.metrics import PROTOCOL_ERROR_REASONS

PROTOCOL_VERSION = 1
FRAME_PREFIX = b"frame."
RESULT_PREFIX = b"result."
STATUS_PREFIX = b"status."
TRACKS_PREFIX = b"tracks."
AGGREGATE_PREFIX = b"aggregate."
CONTROL_TOPIC = b"ctl"
MAX_HEADER_BYTES = 1 << 20
MAX_LANDMARKS = 64  # keypoints per face (BlazeFace gives 6)
MAX_LANDMARK_COORD = 1e6
MAX_BOX_COORD = 1_000_000  # a box corner may lie outside the frame (a face at its edge), never this far
MAX_LABEL_CHARS = 64
MAX_SCORES = 64
SCORE_SUM_TOLERANCE = 0.01  # scores are one distribution, rounded: their sum may pass 1 by this much
CAMERA_NAME_CHARS = "A-Za-z0-9_-"
CAMERA_NAME_MAX = 64
CAMERA_NAME_PATTERN = rf"^[{CAMERA_NAME_CHARS}]{{1,{CAMERA_NAME_MAX}}}$"
CAMERA_NAME_RE = re.compile(CAMERA_NAME_PATTERN)  # compiled once, for every check of a camera name


def camera_name_from(text: str) -> str:
    """A valid camera name made from any text (a file name): other characters become ``_``."""
    name = re.sub(rf"[^{CAMERA_NAME_CHARS}]+", "_", text).strip("_")[:CAMERA_NAME_MAX]
    return name or "file"

FrameEncoding = Literal["raw", "jpeg"]
ControlKind = Literal["ready", "done", "heartbeat", "end", "ended"]
StatusState = Literal["up", "down", "eos", "error"]
CONTROL_KINDS = ("ready", "done", "heartbeat", "end", "ended")
STATUS_STATES = ("up", "down", "eos", "error")
# Why a camera's open tracks were ended all at once (``tracks.<camera>``): its stream ended, the live source stayed
# down past the grace period, the daemon is stopping, or the worker that held them was lost.
TRACK_END_REASONS = ("eos", "down", "stop", "worker_lost", "moved")
MAX_TRACKS = 4096  # track ids in one message


class ProtocolError(ValueError):
    """A message that does not follow the protocol. ``reason`` is a bounded metric label, one of
    ``metrics.PROTOCOL_ERROR_REASONS`` (exported at 0 from start, so an undeclared one is refused)."""

    def __init__(self, reason: str, detail: str):
        if reason not in PROTOCOL_ERROR_REASONS:
            raise ValueError(f"undeclared ProtocolError reason {reason!r}: add it to metrics.PROTOCOL_ERROR_REASONS")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class FrameHeader:
    camera: str
    seq: int
    captured_at: float
    shape: tuple[int, int, int]  # height, width, channels
    encoding: FrameEncoding = "raw"

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), the order used in results."""
        return self.shape[1], self.shape[0]


@dataclass(frozen=True, slots=True)
class Frame:
    header: FrameHeader
    pixels: np.ndarray  # uint8, HxWxC, BGR when C == 3


FACE_KEYS = ("box", "emotion", "confidence", "scores")  # on every face
FACE_OPTIONAL_KEYS = ("landmarks", "track_id", "smoothed_emotion", "smoothed_confidence")  # when known
Landmarks = tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class Face:
    """One face of a result, valid by construction: a Face that exists follows the protocol.

    ``box`` is x, y, w, h in full-frame pixels (w and h positive; x and y may be a little negative for a face
    at the frame's edge). ``emotion`` is the top label and ``confidence`` its score; ``scores`` maps labels
    to probabilities (0 to 1, together at most 1). Where the detector gives keypoints, ``landmarks`` holds
    them as (x, y) frame pixels; where tracking is on, ``track_id`` is the face's stable id and
    ``smoothed_emotion``/``smoothed_confidence`` the track's steadier label and its score. ``extra`` keeps
    keys this version does not know (from a newer sender), so they survive a decode and encode.

    Numbers are normalized (numpy ints and floats become Python ones, landmarks become tuples); anything that
    does not fit raises ProtocolError with reason ``bad_header``. ``to_dict``/``from_dict`` are the wire form.
    """

    box: tuple[int, int, int, int]
    emotion: str
    confidence: float
    scores: dict[str, float]
    _: KW_ONLY
    landmarks: Landmarks | None = None
    track_id: int | None = None
    smoothed_emotion: str | None = None
    smoothed_confidence: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("box", _face_box(self.box))
        put("emotion", _face_label(self.emotion, "emotion"))
        put("confidence", _face_probability(self.confidence, "confidence"))
        put("scores", _face_scores(self.scores))
        if self.landmarks is not None:
            put("landmarks", _face_landmarks(self.landmarks))
        if self.track_id is not None:
            if not _is_int(self.track_id) or not 0 <= self.track_id < 2**63:
                raise ProtocolError("bad_header", "face track_id must be a non-negative integer")
            put("track_id", int(self.track_id))
        if self.smoothed_emotion is not None:
            put("smoothed_emotion", _face_label(self.smoothed_emotion, "smoothed_emotion"))
        if self.smoothed_confidence is not None:
            put("smoothed_confidence", _face_probability(self.smoothed_confidence, "smoothed_confidence"))
        if not isinstance(self.extra, dict):
            raise ProtocolError("bad_header", "face extra must be a map of unknown keys")
        named = [key for key in (*FACE_KEYS, *FACE_OPTIONAL_KEYS) if key in self.extra]
        if named:
            raise ProtocolError("bad_header", f"face extra holds {named[0]!r}, which is a field of Face")

    def to_dict(self) -> dict[str, Any]:
        """The wire map: unknown keys first, then the optional ones present, then the four always there."""
        data = dict(self.extra)
        if self.landmarks is not None:
            data["landmarks"] = [[x, y] for x, y in self.landmarks]
        if self.track_id is not None:
            data["track_id"] = self.track_id
        if self.smoothed_emotion is not None:
            data["smoothed_emotion"] = self.smoothed_emotion
        if self.smoothed_confidence is not None:
            data["smoothed_confidence"] = self.smoothed_confidence
        data.update(box=list(self.box), emotion=self.emotion, confidence=self.confidence, scores=dict(self.scores))
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Face:
        """A face from its wire map. Unknown keys go to ``extra``; a known key must have its documented type."""
        if not isinstance(data, dict):
            raise ProtocolError("bad_header", "face is not a map")
        for key in FACE_KEYS:
            if key not in data:
                raise ProtocolError("bad_header", f"face has no {key}")
        for key in FACE_OPTIONAL_KEYS:
            if key in data and data[key] is None:
                raise ProtocolError("bad_header", f"face {key} is null")
        box = data["box"]
        if not isinstance(box, list):
            raise ProtocolError("bad_header", "face box must be four integers")
        return cls(box=box, emotion=data["emotion"], confidence=data["confidence"], scores=data["scores"],
                   landmarks=data.get("landmarks"), track_id=data.get("track_id"),
                   smoothed_emotion=data.get("smoothed_emotion"), smoothed_confidence=data.get("smoothed_confidence"),
                   extra={k: v for k, v in data.items() if k not in FACE_KEYS and k not in FACE_OPTIONAL_KEYS})


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _face_box(value: Any) -> tuple[int, int, int, int]:
    if not isinstance(value, list | tuple | np.ndarray) or len(value) != 4 or not all(_is_int(v) for v in value):
        raise ProtocolError("bad_header", "face box must be four integers")
    x, y, w, h = (int(v) for v in value)
    if w < 1 or h < 1:
        raise ProtocolError("bad_header", f"face box has width {w} and height {h}: both must be positive")
    if not all(abs(v) <= MAX_BOX_COORD for v in (x, y, w, h)):
        raise ProtocolError("bad_header", f"face box {[x, y, w, h]} lies beyond {MAX_BOX_COORD} pixels")
    return x, y, w, h


def _face_label(value: Any, name: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_LABEL_CHARS:
        raise ProtocolError("bad_header", f"face {name} must be a label of 1 to {MAX_LABEL_CHARS} characters")
    return value


def _face_probability(value: Any, name: str) -> float:
    if not _is_number(value) or not 0.0 <= float(value) <= 1.0:  # NaN fails the comparison too
        raise ProtocolError("bad_header", f"face {name} must be a number from 0 to 1")
    return float(value)


def _face_scores(value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping) or len(value) > MAX_SCORES:
        raise ProtocolError("bad_header", f"face scores must map at most {MAX_SCORES} labels to numbers")
    if not all(isinstance(k, str) and 1 <= len(k) <= MAX_LABEL_CHARS and _is_number(v) for k, v in value.items()):
        raise ProtocolError("bad_header", "face scores must map labels to numbers")
    scores = {k: float(v) for k, v in value.items()}
    if not all(0.0 <= v <= 1.0 for v in scores.values()):
        raise ProtocolError("bad_header", "face scores must each be from 0 to 1")
    if sum(scores.values()) > 1.0 + SCORE_SUM_TOLERANCE:
        raise ProtocolError("bad_header", f"face scores sum to {sum(scores.values()):.4f}, more than 1")
    return scores


def _face_landmarks(value: Any) -> Landmarks:
    """A face's keypoints: 1 to MAX_LANDMARKS [x, y] pairs of finite numbers in frame pixels (they may lie a
    little outside the frame, e.g. an ear at its edge)."""
    if not isinstance(value, list | tuple | np.ndarray) or not 1 <= len(value) <= MAX_LANDMARKS:
        raise ProtocolError("bad_header", f"face landmarks must be a list of 1 to {MAX_LANDMARKS} points")
    points = []
    for point in value:
        if (not isinstance(point, list | tuple | np.ndarray) or len(point) != 2
                or not all(_is_number(v) for v in point)
                or not all(math.isfinite(v) and abs(v) <= MAX_LANDMARK_COORD for v in point)):
            raise ProtocolError("bad_header", "each face landmark must be [x, y], two finite numbers")
        points.append((float(point[0]), float(point[1])))
    return tuple(points)


@dataclass(frozen=True, slots=True)
class Result:
    camera: str
    seq: int
    captured_at: float
    published_at: float
    frame_size: tuple[int, int]  # width, height
    faces: tuple[Face, ...]
    latency_ms: dict[str, float]
    worker: str
    model: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The public event schema (also the msgpack header body)."""
        return {
            **self.extra,
            "v": PROTOCOL_VERSION,
            "camera": self.camera,
            "seq": self.seq,
            "captured_at": self.captured_at,
            "published_at": self.published_at,
            "frame_size": list(self.frame_size),
            "faces": [f.to_dict() for f in self.faces],
            "latency_ms": dict(self.latency_ms),
            "worker": self.worker,
            "model": self.model,
        }


@dataclass(frozen=True, slots=True)
class Status:
    camera: str
    state: StatusState
    message: str
    at: float
    frames: int = 0  # frames captured so far on this camera

    def to_dict(self) -> dict[str, Any]:
        return {"v": PROTOCOL_VERSION, "camera": self.camera, "state": self.state,
                "message": self.message, "at": self.at, "frames": self.frames}


@dataclass(frozen=True, slots=True)
class TracksEnded:
    """Every open track of a camera, ended because the camera stopped producing frames (``reason``, one of
    TRACK_END_REASONS; readers accept others). Published by the worker that held them, after its last result of
    the camera, so a reader sees each track's last face before its end. ``seq`` is the last frame of the camera
    the tracks were followed in."""

    camera: str
    ended_tracks: tuple[int, ...]
    reason: str
    at: float
    seq: int
    worker: str

    def to_dict(self) -> dict[str, Any]:
        return {"v": PROTOCOL_VERSION, "camera": self.camera, "ended_tracks": list(self.ended_tracks),
                "reason": self.reason, "at": self.at, "seq": self.seq, "worker": self.worker}


@dataclass(frozen=True, slots=True)
class Control:
    """Worker to capture: ``ready`` grants credits, ``done`` acknowledges a frame and returns its credit (with
    ``tracks``, the camera's open track ids after that frame), ``ended`` confirms an ``end``. Capture to worker:
    ``end`` ends the camera's open tracks (or exactly ``tracks``, held by a worker that was lost) for ``reason``."""

    kind: ControlKind
    worker: str
    pid: int
    credits: int = 0
    camera: str = ""
    seq: int = -1
    tracks: tuple[int, ...] = ()
    reason: str = ""
    cost_ms: float = 0.0  # done: the worker's CPU for this frame, so capture can place cameras by cost


@dataclass(frozen=True, slots=True)
class Aggregate:
    """What one camera saw in one window, with nothing per face (``[privacy] publish = "aggregates"``).

    ``faces`` counts distinct faces (distinct tracks with tracking, else the most faces in one frame) and
    ``shares`` the share of face observations per emotion. A window with fewer faces than the group minimum is
    ``suppressed``: it carries neither (``faces`` is None, ``shares`` empty), so a reader can tell it from an empty
    one only by the flag, never by a count. ``partial`` marks a window cut short (the camera ended or moved)."""

    camera: str
    start: float
    end: float
    window_seconds: float
    frames: int
    suppressed: bool
    faces: int | None
    shares: dict[str, float]
    partial: bool
    worker: str

    def __post_init__(self) -> None:
        if self.suppressed and (self.faces is not None or self.shares):
            raise ProtocolError("bad_header", "a suppressed aggregate carries no face count and no shares")
        if not self.suppressed and self.faces is None:
            raise ProtocolError("bad_header", "an aggregate that is not suppressed carries its face count")
        if self.end < self.start:
            raise ProtocolError("bad_header", "an aggregate's end comes before its start")
        object.__setattr__(self, "shares", _face_scores(self.shares))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"v": PROTOCOL_VERSION, "camera": self.camera, "start": self.start, "end": self.end,
                                "window_seconds": self.window_seconds, "frames": self.frames,
                                "suppressed": self.suppressed, "partial": self.partial, "worker": self.worker}
        if not self.suppressed:
            data.update(faces=self.faces, shares=dict(self.shares))
        return data


Message = Frame | Result | Status | TracksEnded | Aggregate | Control
Parts = list[bytes | memoryview]


# ---------------------------------------------------------------- encoding

def _pack(header: dict[str, Any]) -> bytes:
    return msgpack.packb(header, use_bin_type=True)


def encode_frame(header: FrameHeader, pixels: np.ndarray, jpeg_quality: int = 85) -> Parts:
    """Frame parts; raw payloads are a zero-copy view of the pixel buffer."""
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise ProtocolError("bad_frame", f"pixels must be uint8 HxW[xC], got {pixels.dtype} {pixels.shape}")
    if header.encoding == "jpeg":
        import cv2

        ok, buffer = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if not ok:
            raise ProtocolError("bad_frame", "JPEG encoding failed")
        payload: bytes | memoryview = buffer.tobytes()
    else:
        payload = memoryview(np.ascontiguousarray(pixels)).cast("B")
    body = {"v": PROTOCOL_VERSION, "kind": "frame", "camera": header.camera, "seq": header.seq,
            "captured_at": header.captured_at, "shape": list(header.shape), "dtype": "uint8",
            "encoding": header.encoding}
    return [FRAME_PREFIX + header.camera.encode(), _pack(body), payload]


def encode_result(result: Result) -> Parts:
    body = {"kind": "result", **result.to_dict()}
    return [RESULT_PREFIX + result.camera.encode(), _pack(body), b""]


def encode_status(status: Status) -> Parts:
    body = {"kind": "status", **status.to_dict()}
    return [STATUS_PREFIX + status.camera.encode(), _pack(body), b""]


def encode_tracks_ended(message: TracksEnded) -> Parts:
    body = {"kind": "tracks", **message.to_dict()}
    return [TRACKS_PREFIX + message.camera.encode(), _pack(body), b""]


def encode_aggregate(message: Aggregate) -> Parts:
    body = {"kind": "aggregate", **message.to_dict()}
    return [AGGREGATE_PREFIX + message.camera.encode(), _pack(body), b""]


def encode_control(control: Control) -> Parts:
    body = {"v": PROTOCOL_VERSION, "kind": control.kind, "worker": control.worker, "pid": control.pid,
            "credits": control.credits, "camera": control.camera, "seq": control.seq}
    if control.tracks:
        body["tracks"] = list(control.tracks)
    if control.reason:
        body["reason"] = control.reason
    if control.cost_ms:
        body["cost_ms"] = control.cost_ms
    return [CONTROL_TOPIC, _pack(body), b""]


# ---------------------------------------------------------------- decoding

def decode(parts: Sequence[bytes | memoryview | Any], max_frame_pixels: int = 4096 * 4096) -> Message:
    """Parse and validate one multipart message. Raises ProtocolError."""
    if len(parts) != 3:
        raise ProtocolError("bad_parts", f"expected 3 frames, got {len(parts)}")
    topic, raw_header, payload = (_as_bytes_like(p) for p in parts)
    header = _unpack_header(raw_header)
    topic_bytes = bytes(topic)
    if topic_bytes == CONTROL_TOPIC:
        return _decode_control(header)
    prefix, _, camera_bytes = topic_bytes.partition(b".")
    camera = _topic_camera(camera_bytes)
    if _str(header, "camera") != camera:
        raise ProtocolError("bad_header", "header camera does not match topic")
    if prefix == b"frame":
        return _decode_frame(header, payload, max_frame_pixels)
    if prefix == b"result":
        return _decode_result(header)
    if prefix == b"status":
        return _decode_status(header)
    if prefix == b"tracks":
        return _decode_tracks_ended(header)
    if prefix == b"aggregate":
        return _decode_aggregate(header)
    raise ProtocolError("bad_topic", f"unknown topic {topic_bytes[:32]!r}")


def _as_bytes_like(part: Any) -> bytes | memoryview:
    if isinstance(part, bytes | memoryview):
        return part
    buffer = getattr(part, "buffer", None)  # zmq.Frame
    if buffer is not None:
        return buffer
    raise ProtocolError("bad_parts", f"frame of type {type(part).__name__}")


def _topic_camera(camera_bytes: bytes) -> str:
    try:
        camera = camera_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError("bad_topic", "topic is not ASCII") from None
    if not CAMERA_NAME_RE.match(camera):
        raise ProtocolError("bad_topic", f"bad camera name in topic {camera[:70]!r}")
    return camera


def _refuse_extension(code: int, data: bytes) -> Any:
    """msgpack extension types have no place in the protocol: refused at any depth, never turned into objects."""
    raise ValueError(f"msgpack extension type {code}")


def _unpack_header(raw: bytes | memoryview) -> dict[str, Any]:
    if len(raw) > MAX_HEADER_BYTES:
        raise ProtocolError("oversized", f"header of {len(raw)} bytes")
    try:
        # timestamp=1: the one extension msgpack decodes itself (Timestamp, bypassing ext_hook) becomes a plain float
        header = msgpack.unpackb(raw, raw=False, strict_map_key=True, ext_hook=_refuse_extension, timestamp=1)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise ProtocolError("bad_msgpack", type(exc).__name__) from None
    if not isinstance(header, dict):
        raise ProtocolError("bad_header", "header is not a map")
    version = header.get("v")
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise ProtocolError("bad_version", f"unsupported protocol version {version!r}")
    return header


def _get(header: dict[str, Any], key: str, kinds: tuple[type, ...]) -> Any:
    if key not in header:
        raise ProtocolError("bad_header", f"missing {key}")
    value = header[key]
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise ProtocolError("bad_header", f"{key} has type {type(value).__name__}")
    return value


def _str(header: dict[str, Any], key: str, max_len: int = 256) -> str:
    value = _get(header, key, (str,))
    if len(value) > max_len:
        raise ProtocolError("bad_header", f"{key} longer than {max_len}")
    return value


def _int(header: dict[str, Any], key: str, low: int = 0, high: int = 2**63 - 1) -> int:
    value = _get(header, key, (int,))
    if not low <= value <= high:
        raise ProtocolError("bad_header", f"{key} out of range")
    return value


def _float(header: dict[str, Any], key: str) -> float:
    value = float(_get(header, key, (int, float)))
    if not math.isfinite(value) or value < 0:
        raise ProtocolError("bad_header", f"{key} is not a finite non-negative number")
    return value


def _kind(header: dict[str, Any], expected: tuple[str, ...]) -> str:
    kind = _str(header, "kind", 32)
    if kind not in expected:
        raise ProtocolError("bad_kind", f"kind {kind[:32]!r} not in {expected}")
    return kind


def _decode_frame(header: dict[str, Any], payload: bytes | memoryview, max_pixels: int) -> Frame:
    _kind(header, ("frame",))
    shape = _get(header, "shape", (list,))
    if len(shape) != 3 or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise ProtocolError("bad_shape", "shape must be [height, width, channels]")
    height, width, channels = shape
    if height < 1 or width < 1 or channels not in (1, 3) or height * width > max_pixels:
        raise ProtocolError("bad_shape", f"unsupported shape {shape}")
    if _str(header, "dtype", 16) != "uint8":
        raise ProtocolError("bad_shape", "dtype must be uint8")
    encoding = _str(header, "encoding", 16)
    frame_header = FrameHeader(camera=_str(header, "camera", 64), seq=_int(header, "seq"),
                               captured_at=_float(header, "captured_at"),
                               shape=(height, width, channels), encoding="raw")
    if encoding == "raw":
        if len(payload) != height * width * channels:
            raise ProtocolError("bad_payload", f"payload {len(payload)} bytes for shape {shape}")
        pixels = np.frombuffer(payload, dtype=np.uint8).reshape(height, width, channels)
    elif encoding == "jpeg":
        pixels = _decode_jpeg(payload, (height, width, channels))
        frame_header = FrameHeader(frame_header.camera, frame_header.seq, frame_header.captured_at,
                                   frame_header.shape, "jpeg")
    else:
        raise ProtocolError("bad_header", f"unknown encoding {encoding[:16]!r}")
    return Frame(frame_header, pixels)


_JPEG_FRAME_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """(height, width) from a JPEG's start-of-frame header, read before decoding so a hostile payload cannot
    make the decoder allocate more than its header promises. None if no frame header is found."""
    data = bytes(data[: 1 << 16]) if len(data) > 1 << 16 else bytes(data)
    if data[:2] != b"\xff\xd8":
        return None
    index = 2
    while index + 9 <= len(data):
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        length = int.from_bytes(data[index + 2: index + 4], "big")
        if marker in _JPEG_FRAME_MARKERS:
            return int.from_bytes(data[index + 5: index + 7], "big"), int.from_bytes(data[index + 7: index + 9], "big")
        index += 2 + length
    return None


def _decode_jpeg(payload: bytes | memoryview, shape: tuple[int, int, int]) -> np.ndarray:
    import cv2

    if jpeg_size(payload) != shape[:2]:
        raise ProtocolError("bad_payload", f"JPEG header does not declare the frame's {shape[0]}x{shape[1]}")
    flag = cv2.IMREAD_GRAYSCALE if shape[2] == 1 else cv2.IMREAD_COLOR
    pixels = cv2.imdecode(np.frombuffer(payload, dtype=np.uint8), flag)
    if pixels is None:
        raise ProtocolError("bad_payload", "JPEG payload does not decode")
    pixels = pixels.reshape(pixels.shape[0], pixels.shape[1], -1)
    if pixels.shape != shape:
        raise ProtocolError("bad_payload", f"JPEG decodes to {pixels.shape}, header says {shape}")
    return pixels


_RESULT_FIELDS = {"v", "kind", "camera", "seq", "captured_at", "published_at", "frame_size", "faces",
                  "latency_ms", "worker", "model"}


def _decode_result(header: dict[str, Any]) -> Result:
    _kind(header, ("result",))
    size = _get(header, "frame_size", (list,))
    if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
        raise ProtocolError("bad_header", "frame_size must be [width, height]")
    faces = _get(header, "faces", (list,))
    if len(faces) > 4096:
        raise ProtocolError("bad_header", "too many faces")
    latency = _get(header, "latency_ms", (dict,))
    if not all(isinstance(k, str) and isinstance(v, int | float) for k, v in latency.items()):
        raise ProtocolError("bad_header", "latency_ms must map stages to numbers")
    return Result(camera=_str(header, "camera", 64), seq=_int(header, "seq"),
                  captured_at=_float(header, "captured_at"), published_at=_float(header, "published_at"),
                  frame_size=(size[0], size[1]), faces=tuple(Face.from_dict(f) for f in faces),
                  latency_ms={k: float(v) for k, v in latency.items()}, worker=_str(header, "worker", 64),
                  model=_str(header, "model", 128),
                  extra={k: v for k, v in header.items() if k not in _RESULT_FIELDS})


def _decode_status(header: dict[str, Any]) -> Status:
    _kind(header, ("status",))
    state = _str(header, "state", 16)
    if state not in STATUS_STATES:
        raise ProtocolError("bad_header", f"unknown status state {state!r}")
    return Status(camera=_str(header, "camera", 64), state=state,  # type: ignore[arg-type]
                  message=_str(header, "message", 4096), at=_float(header, "at"),
                  frames=_int(header, "frames"))


def _track_ids(header: dict[str, Any], key: str) -> tuple[int, ...]:
    ids = _get(header, key, (list,))
    if len(ids) > MAX_TRACKS or not all(_is_int(i) and 0 <= i < 2**63 for i in ids):
        raise ProtocolError("bad_header", f"{key} must be at most {MAX_TRACKS} non-negative integers")
    return tuple(int(i) for i in ids)


def _decode_tracks_ended(header: dict[str, Any]) -> TracksEnded:
    _kind(header, ("tracks",))
    return TracksEnded(camera=_str(header, "camera", 64), ended_tracks=_track_ids(header, "ended_tracks"),
                       reason=_str(header, "reason", 32), at=_float(header, "at"), seq=_int(header, "seq"),
                       worker=_str(header, "worker", 64))


def _decode_aggregate(header: dict[str, Any]) -> Aggregate:
    _kind(header, ("aggregate",))
    suppressed = _get(header, "suppressed", (bool,))
    if suppressed and ("faces" in header or "shares" in header):
        raise ProtocolError("bad_header", "a suppressed aggregate carries no face count and no shares")
    faces = None if suppressed else _int(header, "faces", 0, 1 << 31)
    shares = {} if suppressed else _get(header, "shares", (dict,))
    return Aggregate(camera=_str(header, "camera", 64), start=_float(header, "start"), end=_float(header, "end"),
                     window_seconds=_float(header, "window_seconds"), frames=_int(header, "frames", 0, 1 << 31),
                     suppressed=suppressed, faces=faces, shares=shares, partial=_get(header, "partial", (bool,)),
                     worker=_str(header, "worker", 64))


def _decode_control(header: dict[str, Any]) -> Control:
    kind = _kind(header, CONTROL_KINDS)
    camera = _str(header, "camera", 64)
    if camera and not CAMERA_NAME_RE.match(camera):
        raise ProtocolError("bad_header", "bad camera name")
    tracks = _track_ids(header, "tracks") if "tracks" in header else ()
    reason = _str(header, "reason", 32) if "reason" in header else ""
    return Control(kind=kind, worker=_str(header, "worker", 64),  # type: ignore[arg-type]
                   pid=_int(header, "pid", 0, 2**31), credits=_int(header, "credits", 0, 1024),
                   camera=camera, seq=_int(header, "seq", -1), tracks=tracks, reason=reason,
                   cost_ms=_float(header, "cost_ms") if "cost_ms" in header else 0.0)


def result_from_dict(data: dict[str, Any]) -> Result:
    """Rebuild a Result from its public JSON form (as printed by ``emotiond events``)."""
    return _decode_result({"kind": "result", **data})
