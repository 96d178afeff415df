"""A real RTSP camera for the tests and the camera benchmark: serves a video file as H.264 over RTSP, looping
endlessly.

Runs under Debian's ``/usr/bin/python3`` (the GStreamer RTSP server is reached through GObject introspection,
which the project's venv does not have) and imports nothing of emotiond. Debian packages: python3-gi,
gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-base (decodebin, videoconvert, videoscale),
gstreamer1.0-plugins-good (qtdemux, rtph264pay), gstreamer1.0-plugins-ugly (x264enc) and gstreamer1.0-libav
(decoders for MPEG-4 part 2, as OpenCV's ``mp4v`` writes).

The file is decoded once into memory at start-up (keep test videos short and small) and pushed through an
appsrc at its frame rate with live timestamps, so the stream looks like a camera: it never ends and a client
that joins late gets the current picture. The media factory is shared, so every client sees the same stream and
a client that reconnects is served again. Clients choose TCP (interleaved) or UDP transport.

``--encode-once`` encodes the video to H.264 once at start-up (main profile, ``--bitrate``, a key frame every
second, no B-frames, as IP cameras send it) and sends those frames on every loop, so serving costs this machine
almost no CPU: for benchmarks, where the camera's encoder would otherwise compete with what is measured. A stream
that jumps ahead (after SIGSTOP) then resumes at the next key frame.

Basic authentication (``--user``; the password comes from the environment variable named by
``--password-env``, default RTSP_SERVER_PASSWORD, or from the first line of stdin with ``--password-stdin``,
never from argv, which ``ps`` shows): a client without credentials or with wrong ones gets 401.

Prints ``ready <port>`` on stdout once listening (``--port 0`` takes a free port, and the line tells which).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

ROLE = "camera-user"
DEFAULT_PASSWORD_ENV = "RTSP_SERVER_PASSWORD"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", help="a video file GStreamer can decode")
    parser.add_argument("--port", type=int, default=8554, help="0 takes a free port (printed on the ready line)")
    parser.add_argument("--address", default="127.0.0.1", help="address to bind (0.0.0.0 for all)")
    parser.add_argument("--mount", default="/cam", help="the path of the stream")
    parser.add_argument("--fps", type=float, default=0.0, help="frame rate to serve at (default: the file's)")
    parser.add_argument("--width", type=int, default=0, help="scale to this width (default: the file's)")
    parser.add_argument("--height", type=int, default=0, help="scale to this height (default: the file's)")
    parser.add_argument("--protocols", default="tcp,udp", help="transports clients may choose: tcp, udp or both")
    parser.add_argument("--encode-once", action="store_true",
                        help="encode the video once at start-up and send the same H.264 on every loop")
    parser.add_argument("--bitrate", type=int, default=4096, help="kbit/s of --encode-once (default %(default)s)")
    parser.add_argument("--user", default=None, help="require basic authentication as this user")
    parser.add_argument("--password-env", default=DEFAULT_PASSWORD_ENV,
                        help="environment variable holding the password (default %(default)s)")
    parser.add_argument("--password-stdin", action="store_true", help="read the password from stdin's first line")
    args = parser.parse_args(argv)
    if not args.mount.startswith("/"):
        parser.error("--mount must start with /")
    if (args.width > 0) != (args.height > 0):
        parser.error("--width and --height go together")
    if not 64 <= args.bitrate <= 100_000:
        parser.error("--bitrate goes from 64 to 100000 kbit/s")
    return args


def password_of(args: argparse.Namespace) -> str | None:
    if args.user is None:
        return None
    password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else os.environ.get(args.password_env)
    if not password:
        sys.exit(f"--user {args.user} needs a password in ${args.password_env} or on stdin (--password-stdin)")
    return password


class Frames:
    """The file's frames, decoded once: I420 buffers at the requested size (or, with ``encode_kbps``, H.264 access
    units encoded from them at that bitrate), and the frame rate."""

    def __init__(self, path: str, width: int, height: int, fps: float, encode_kbps: int = 0) -> None:
        scale = f",width={width},height={height}" if width > 0 else ""
        encode = ""
        if encode_kbps:  # a key frame every second at the rate served (every 30 frames without --fps)
            encode = (f"! x264enc speed-preset=veryfast tune=zerolatency bitrate={encode_kbps} "
                      f"key-int-max={max(1, round(fps or 30.0))} bframes=0 "
                      "! video/x-h264,profile=main,stream-format=byte-stream,alignment=au ")
        pipeline = Gst.parse_launch(
            f"filesrc name=file ! decodebin ! videoconvert ! videoscale ! video/x-raw,format=I420{scale} {encode}"
            "! appsink name=sink sync=false max-buffers=0")
        pipeline.get_by_name("file").set_property("location", path)
        sink = pipeline.get_by_name("sink")
        pipeline.set_state(Gst.State.PLAYING)
        self.buffers: list[Gst.Buffer] = []
        caps = None
        try:
            while True:
                sample = sink.emit("try-pull-sample", 30 * Gst.SECOND)
                if sample is None:
                    break
                caps = caps or sample.get_caps()
                self.buffers.append(sample.get_buffer())
            message = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
            if message is not None:
                error, debug = message.parse_error()
                sys.exit(f"cannot decode {path}: {error.message} ({debug})")
        finally:
            pipeline.set_state(Gst.State.NULL)
        if not self.buffers or caps is None:
            sys.exit(f"no video frames in {path}")
        structure = caps.get_structure(0)
        ok, num, den = structure.get_fraction("framerate")
        self.fps = fps if fps > 0 else (num / den if ok and num > 0 and den > 0 else 30.0)
        self.width, self.height = structure.get_value("width"), structure.get_value("height")
        self.encoded = bool(encode_kbps)
        # Where a stream that jumps ahead may resume: any frame, or only key frames of an encoded video.
        self.key_frames = [index for index, buffer in enumerate(self.buffers)
                           if not self.encoded or not buffer.has_flags(Gst.BufferFlags.DELTA_UNIT)]
        rate = f"{Gst.util_double_to_fraction(self.fps)[0]}/{Gst.util_double_to_fraction(self.fps)[1]}"
        kind = "video/x-h264,stream-format=byte-stream,alignment=au" if self.encoded else "video/x-raw,format=I420"
        self.caps = Gst.Caps.from_string(f"{kind},width={self.width},height={self.height},framerate={rate}")


class Feeder:
    """Pushes the frames into one media's appsrc, looping, stamped with the pipeline's running time.

    Like a camera, the stream shows the present: when the process was stopped (SIGSTOP) and goes on, the
    timestamps jump to the running time (no burst of the frames that were never sent) and so does the picture.
    """

    CATCH_UP = 0.5  # seconds behind the running time at which the stream jumps ahead rather than catching up

    def __init__(self, frames: Frames, appsrc: Gst.Element) -> None:
        self.frames = frames
        self.appsrc = appsrc
        self.duration = int(Gst.SECOND / frames.fps)
        self.next = 0  # the next frame's number since the media started; its pts is next * duration
        appsrc.set_property("caps", frames.caps)
        appsrc.connect("need-data", self.need_data)

    def need_data(self, appsrc: Gst.Element, _length: int) -> None:
        clock = appsrc.get_clock()
        if clock is not None:
            now = clock.get_time() - appsrc.get_base_time()
            if now - self.next * self.duration > self.CATCH_UP * Gst.SECOND:
                self.next = self._resume_at(now // self.duration)
        source = self.frames.buffers[self.next % len(self.frames.buffers)]
        buffer = source.copy()  # shares the memory, owns its own timestamps
        buffer.pts = buffer.dts = self.next * self.duration
        buffer.duration = self.duration
        self.next += 1
        appsrc.emit("push-buffer", buffer)

    def _resume_at(self, wanted: int) -> int:
        """The first frame number from ``wanted`` on whose frame a stream may resume at (every frame, or a key
        frame of an encoded video)."""
        count = len(self.frames.buffers)
        offset = wanted % count
        later = [index for index in self.frames.key_frames if index >= offset]
        return wanted - offset + (later[0] if later else count + self.frames.key_frames[0])


class Factory(GstRtspServer.RTSPMediaFactory):
    def __init__(self, frames: Frames) -> None:
        super().__init__()
        self.frames = frames
        gop = max(1, round(frames.fps))  # a key frame every second: a client that joins waits at most that long
        encode = ("! videoconvert ! video/x-raw,format=I420 "
                  f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bframes=0 "
                  "! video/x-h264,profile=baseline ")
        self.set_launch(
            "( appsrc name=src is-live=true format=time block=true max-bytes=0 max-buffers=2 "
            f"{'! h264parse ' if frames.encoded else encode}! rtph264pay name=pay0 pt=96 config-interval=1 )")
        self.set_shared(True)
        self.connect("media-configure", self.configure)

    def configure(self, _factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
        appsrc = media.get_element().get_by_name_recurse_up("src")
        media.feeder = Feeder(self.frames, appsrc)  # kept alive with the media


def transports(names: str) -> GstRtsp.RTSPLowerTrans:
    known = {"tcp": GstRtsp.RTSPLowerTrans.TCP, "udp": GstRtsp.RTSPLowerTrans.UDP}
    chosen = GstRtsp.RTSPLowerTrans(0)
    for name in filter(None, (part.strip().lower() for part in names.split(","))):
        if name not in known:
            sys.exit(f"unknown transport {name!r}: choose from tcp, udp")
        chosen |= known[name]
    if not chosen:
        sys.exit("--protocols names no transport")
    return chosen


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    password = password_of(args)
    Gst.init(None)
    frames = Frames(args.video, args.width, args.height, args.fps, args.bitrate if args.encode_once else 0)

    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    factory = Factory(frames)
    factory.set_protocols(transports(args.protocols))
    if args.user is not None:
        # As gst-rtsp-server's examples/test-auth.c: a token with a role for the user, the role may access and
        # construct the factory's media; no default token, so anyone else is refused with 401.
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, ROLE)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, password), token)
        server.set_auth(auth)
        factory.add_role_from_structure(Gst.Structure.new_from_string(
            f"{ROLE}, {GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS}=(boolean)true, "
            f"{GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT}=(boolean)true"))
    server.get_mount_points().add_factory(args.mount, factory)

    loop = GLib.MainLoop()
    if server.attach(None) == 0:  # GStreamer has logged why (address in use, not on this host, ...)
        print(f"cannot listen on {args.address}:{args.port}", file=sys.stderr, flush=True)
        return 1
    # Clients that went away without TEARDOWN (killed readers) are dropped once their session times out.
    GLib.timeout_add_seconds(2, lambda: server.get_session_pool().cleanup() >= 0)
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    print(f"ready {server.get_bound_port()}", flush=True)
    print(f"serving {args.video} ({frames.width}x{frames.height} at {frames.fps:g} fps, "
          f"{len(frames.buffers)} frames{', encoded once' if frames.encoded else ''}) "
          f"at rtsp://{args.address}:{server.get_bound_port()}{args.mount}", file=sys.stderr, flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
