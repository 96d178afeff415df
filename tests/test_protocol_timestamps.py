"""msgpack's built-in Timestamp extension bypasses ext_hook: it must still decode to a plain, printable value."""

from __future__ import annotations

import json

import msgpack

from emotiond.core import protocol


def test_a_nested_timestamp_decodes_to_a_plain_number_that_prints_as_json():
    result = protocol.Result(camera="cam", seq=1, captured_at=1.0, published_at=2.0, frame_size=(64, 48), faces=(),
                             latency_ms={}, worker="w", model="m", extra={"note": "x"})
    parts = protocol.encode_result(result)
    header = msgpack.unpackb(parts[1], raw=False)
    header["note"] = {"when": msgpack.Timestamp(5, 0)}
    parts[1] = msgpack.packb(header, datetime=False)
    decoded = protocol.decode(parts)
    assert isinstance(decoded, protocol.Result)
    assert json.loads(json.dumps(decoded.to_dict()))["note"] == {"when": 5.0}
