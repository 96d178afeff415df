"""Print emotiond results as JSON lines using only pyzmq and msgpack (the format is in docs/protocol.md).

Usage: python subscriber.py [ENDPOINT]   e.g. ipc:///tmp/emotiond-1000/results.sock
Stops when a file source reaches its end (a status message with state "eos").
"""
import json
import os
import sys

import msgpack
import zmq

runtime = os.environ.get("EMOTIOND_BUS__RUNTIME_DIR") or (
    os.path.join(os.environ["XDG_RUNTIME_DIR"], "emotiond") if os.environ.get("XDG_RUNTIME_DIR")
    else f"/tmp/emotiond-{os.getuid()}")
endpoint = sys.argv[1] if len(sys.argv) > 1 else f"ipc://{runtime}/results.sock"

sock = zmq.Context().socket(zmq.SUB)
sock.setsockopt(zmq.SUBSCRIBE, b"result.")
sock.setsockopt(zmq.SUBSCRIBE, b"status.")
sock.connect(endpoint)
while True:
    topic, header, payload = sock.recv_multipart()
    message = msgpack.unpackb(header, raw=False)
    if message.get("v") != 1:
        continue  # a protocol version this program does not know
    if message["kind"] == "status" and message["state"] == "eos":
        break
    if message["kind"] == "result":
        del message["kind"]
        print(json.dumps(message), flush=True)
