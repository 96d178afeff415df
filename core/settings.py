"""The one settings tree for every emotiond process.

Precedence, lowest first: field defaults, a TOML file (``--config``), environment variables
``EMOTIOND_...`` (nested with ``__``), then explicit overrides (CLI flags). Unknown keys are
rejected everywhere so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializationInfo,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from emotiond.core.endpoints import is_exposed
from emotiond.core.errors import UsageError, format_validation_error
from emotiond.core.protocol import CAMERA_NAME_PATTERN
from emotiond.core.redact import redact

DEFAULT_MODEL_NAME = "fer-mini-xception"
MASK_SECRETS = "mask_secrets"  # serialization context key: print secrets as ********** (config show)
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"  # an environment variable that holds a secret (password_env)


def shipped_config(*parts: str) -> Path:
    """A file under the repository's config/, shipped as package data of ``emotiond`` (a wheel installs it on
    disk, so a plain path serves both a checkout and an installed package)."""
    from importlib.resources import files

    return Path(str(files("emotiond").joinpath("config", *parts)))


def default_runtime_dir() -> Path:
    """Where ipc sockets and metric files live: per user, never shared between users."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.access(base, os.W_OK):
        return Path(base) / "emotiond"
    return Path("/tmp") / f"emotiond-{os.getuid()}"


def default_state_dir() -> Path:
    """Where state that outlives a restart lives (the web console's users, sessions and certificate): per user,
    ``$XDG_STATE_HOME/emotiond`` or ``~/.local/state/emotiond``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "emotiond"


def default_models_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "emotiond" / "models"


class _Section(BaseModel):
    """The base of every settings section, here and in the training config: an unknown key is an error naming
    it (never a silent default), and assignments are validated like loaded values."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SourceSettings(_Section):
    """One frame source: a camera, file, image folder, network stream or the demo."""

    name: Annotated[str, Field(pattern=CAMERA_NAME_PATTERN, description="Camera name used in topics, "
                               "results and metric labels.")]
    url: Annotated[str, Field(min_length=1, max_length=4096, description="Webcam index or /dev/videoN, "
                              "video file, image folder, rtsp:// or http(s):// URL, or 'demo'.")]
    mode: Annotated[Literal["auto", "live", "file"], Field(
        description="'live' keeps only the newest frame and drops stale ones; 'file' processes every "
                    "frame; 'auto' picks live for cameras and streams, file for files and folders.")] = "auto"
    realtime: Annotated[bool, Field(description="Pace a file at its own fps, then behave like live.")] = False
    loop: Annotated[bool, Field(description="Restart a file or folder at its end instead of finishing.")] = False
    fps: Annotated[float, Field(ge=0.0, le=240.0, description="Pacing rate for folders and realtime "
                                "files; 0 uses the file's own rate (30 when unknown).")] = 0.0
    rtsp_transport: Annotated[Literal["tcp", "udp"], Field(
        description="How an rtsp:// camera sends its video: 'tcp' (interleaved in the RTSP connection; passes "
                    "NAT and firewalls) or 'udp' (lower latency on a clean LAN; some NVRs need it).")] = "tcp"
    ffmpeg_options: Annotated[dict[str, str], Field(
        max_length=32, description="Further FFmpeg input options for a stream, as OpenCV passes them "
                                   "(OPENCV_FFMPEG_CAPTURE_OPTIONS), e.g. {max_delay = \"500000\"}.")] = Field(
        default_factory=dict)
    password_file: Annotated[Path | None, Field(description="File whose first line is the camera's password, "
                                                "put into the URL's user:password@ at each connect; the URL "
                                                "then names only the user.")] = None
    password_env: Annotated[str | None, Field(pattern=ENV_NAME_PATTERN, description="Environment "
                                              "variable holding the camera's password (when password_file is "
                                              "unset).")] = None

    @field_validator("ffmpeg_options")
    @classmethod
    def _ffmpeg_options_are_plain(cls, options: dict[str, str]) -> dict[str, str]:
        for key, value in options.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", key):
                raise ValueError(f"ffmpeg option name {key!r} must be lower-case letters, digits and _")
            if not value or len(value) > 256 or any(c in value for c in ";|\n\r"):
                raise ValueError(f"ffmpeg option {key}: the value must be 1-256 characters without ; or |")
            if key == "rtsp_transport":
                raise ValueError("set rtsp_transport as its own key, not in ffmpeg_options")
        return options

    @model_validator(mode="after")
    def _password_goes_with_a_user(self) -> SourceSettings:
        from urllib.parse import urlsplit

        if self.password_file is None and self.password_env is None:
            return self
        if self.password_file is not None and self.password_env is not None:
            raise ValueError("give password_file or password_env, not both")
        try:
            parts = urlsplit(self.url)
            has_user, has_password = parts.username, parts.password
        except ValueError:
            has_user = has_password = None
        if "://" not in self.url or not has_user:
            raise ValueError("password_file / password_env need a URL with a user name (rtsp://USER@host/...)")
        if has_password is not None:
            raise ValueError("the URL already holds a password; remove it or drop password_file / password_env")
        return self

    @field_serializer("url", when_used="json")
    def _url_for_child_processes(self, url: str, info: SerializationInfo) -> str:
        """Child processes get the URL as configured; ``config show`` prints it with its password masked."""
        if (info.context or {}).get(MASK_SECRETS):
            return redact(url)
        return url


class CaptureSettings(_Section):
    file_queue_frames: Annotated[int, Field(ge=1, le=1024, description="Frames read ahead per file "
                                            "source; reading blocks when full so nothing is lost.")] = 8
    reconnect_initial_seconds: Annotated[float, Field(ge=0.05, le=60.0, description="First delay "
                                                      "before reopening a failed live source.")] = 0.5
    reconnect_max_seconds: Annotated[float, Field(ge=0.1, le=600.0, description="Backoff cap for "
                                                  "reopening a failed live source.")] = 10.0
    worker_timeout_seconds: Annotated[float, Field(ge=0.5, le=120.0, description="A worker silent this "
                                                   "long is presumed dead; its frames are re-sent.")] = 3.0
    credits_per_worker: Annotated[int, Field(ge=1, le=64, description="Frames a worker may hold at "
                                             "once; more lets it batch across frames.")] = 2
    stall_seconds: Annotated[float, Field(ge=1.0, le=300.0, description="A live source that delivers no frame "
                                          "for this long is marked down (stalled) and reopened, however its "
                                          "decoder behaves.")] = 5.0
    fair_share: Annotated[bool, Field(description="Under overload, hold back a live camera served well above the "
                                      "least-served one, so every camera drops about the same share of its "
                                      "frames whichever worker it shares; off serves each worker's cameras as "
                                      "fast as that worker goes (more frames in all, unevenly).")] = True


class BusSettings(_Section):
    runtime_dir: Annotated[Path, Field(description="Folder for ipc sockets and metric files.")] = Field(
        default_factory=default_runtime_dir)
    frames_endpoint: Annotated[str, Field(description="Capture's ROUTER; workers connect here for work. "
                                          "Empty means ipc in runtime_dir.")] = ""
    results_in_endpoint: Annotated[str, Field(description="Proxy XSUB; workers and capture publish "
                                              "here. Empty means ipc in runtime_dir.")] = ""
    results_endpoint: Annotated[str, Field(description="Proxy XPUB; subscribers connect here. Empty "
                                           "means ipc in runtime_dir.")] = ""
    frame_encoding: Annotated[Literal["raw", "jpeg"], Field(description="How frames travel: raw pixels "
                                                             "(zero-copy, local) or JPEG (for tcp).")] = "raw"
    jpeg_quality: Annotated[int, Field(ge=10, le=100, description="JPEG quality when frame_encoding is "
                                       "jpeg.")] = 85
    high_water_mark: Annotated[int, Field(ge=1, le=100_000, description="Messages queued per socket "
                                          "before PUB drops or others block.")] = 64
    max_message_bytes: Annotated[int, Field(ge=1024, le=1 << 30, description="Larger incoming messages "
                                            "are refused by ZeroMQ (ZMQ_MAXMSGSIZE).")] = 64 << 20
    max_frame_pixels: Annotated[int, Field(ge=1, le=100_000_000, description="Frames above this many "
                                           "pixels are rejected at decode.")] = 4096 * 4096


class DetectionSettings(_Section):
    backend: Annotated[Literal["haar", "blazeface"], Field(
        description="Face detector: 'haar' (OpenCV's frontal cascade) or 'blazeface' (MediaPipe's BlazeFace "
                    "on LiteRT: finds tilted and small faces and gives 6 landmarks per face; its models come "
                    "with `emotiond models fetch`).")] = "haar"
    blazeface_model: Annotated[Literal["full", "short"], Field(
        description="BlazeFace model: 'full' range (192x192 input, faces up to about 5 m) or 'short' range "
                    "(128x128 input, faces within about 2 m).")] = "full"
    min_score: Annotated[float | None, Field(ge=0.0, le=1.0, description="BlazeFace: least face score to "
                                             "keep; unset uses the model's published threshold (0.6 full "
                                             "range, 0.5 short range).")] = None
    haar_rotations: Annotated[list[Annotated[float, Field(gt=0.0, le=60.0)]], Field(
        max_length=4, description="Haar with tracking: when a tracked face is lost, its region is searched "
                                  "again turned by each of these angles (degrees, both ways) before the "
                                  "face counts as gone. Empty turns this off.")] = Field(
        default_factory=lambda: [15.0, 30.0])
    scale_factor: Annotated[float, Field(gt=1.0, le=2.0, description="Haar pyramid step.")] = 1.1
    min_neighbors: Annotated[int, Field(ge=0, le=50, description="Haar neighbours needed to keep a "
                                        "face.")] = 5
    region_min_neighbors: Annotated[int, Field(ge=0, le=50, description="Haar with tracking: neighbours needed "
                                               "to keep a face in the small region around a known face, where "
                                               "one is expected (fewer than min_neighbors: a face seen at 40 px "
                                               "gathers fewer).")] = 3
    min_size: Annotated[int, Field(ge=8, le=4096, description="Smallest face side in full-frame "
                                   "pixels.")] = 40
    downscale: Annotated[float, Field(gt=0.0, le=1.0, description="Resize factor applied before full-frame "
                                      "detection; boxes are mapped back to full frame. Faces smaller than "
                                      "24 / downscale pixels are not found.")] = 1.0
    max_scan_width: Annotated[int, Field(ge=0, le=16384, description="Haar: full-frame scans look at the frame "
                                         "shrunk to at most this many pixels wide (with downscale, the smaller "
                                         "scale wins), so their cost stops growing with the camera's resolution; "
                                         "boxes are mapped back, and known faces are still re-detected at full "
                                         "resolution. A scan then misses faces narrower than 24 x frame width / "
                                         "this (72 px at 1920 wide). 0 scans at full resolution.")] = 640
    threads: Annotated[int, Field(ge=0, le=64, description="OpenCV threads per worker; 0 divides the "
                                  "cores among workers.")] = 0


class TrackingSettings(_Section):
    enabled: Annotated[bool, Field(description="Follow faces between frames: stable track ids, smoothed "
                                   "emotions, and cheap re-detection near known faces. Keeps each camera on "
                                   "one worker.")] = True
    full_scan_interval: Annotated[int, Field(ge=1, le=300, description="Scan the whole frame at least every "
                                             "this many frames; a new face is found within twice this "
                                             "many frames (within a few frames in live mode).")] = 15
    roi_margin: Annotated[float, Field(ge=0.1, le=3.0, description="Search region around a known face, as a "
                                       "fraction of its size on each side.")] = 0.35
    roi_face_px: Annotated[int, Field(ge=24, le=256, description="Known faces are re-detected at this size "
                                      "(smaller is faster, larger gives steadier boxes).")] = 40
    iou_threshold: Annotated[float, Field(ge=0.0, le=1.0, description="Least overlap for a detection to "
                                          "continue a track.")] = 0.3
    max_missed: Annotated[int, Field(ge=0, le=300, description="Frames a track may go unseen before it "
                                     "ends.")] = 3
    ema_alpha: Annotated[float, Field(gt=0.0, le=1.0, description="Weight of the newest scores in the "
                                      "smoothed emotion.")] = 0.4
    hysteresis: Annotated[float, Field(ge=0.0, le=1.0, description="Lead another label needs over the "
                                       "current smoothed label before it changes.")] = 0.1
    down_grace_seconds: Annotated[float, Field(ge=0.0, le=600.0, description="A live camera down for longer "
                                               "than this ends its open tracks; one back sooner keeps them."
                                               )] = 5.0
    reuse_stable: Annotated[bool, Field(description="A face whose box barely moved between its last two "
                                        "detections is carried into the next frame without a search, and "
                                        "searched for again in the frame after (BlazeFace: when every known "
                                        "face held still, the next frame is not detected).")] = True
    coarse_scans: Annotated[bool, Field(description="Haar: while every known face is large, most periodic full "
                                        "scans look at half resolution (a quarter of the cost); every fourth "
                                        "is at full resolution for small newcomers.")] = True


class ClassifierSettings(_Section):
    model: Annotated[str, Field(min_length=1, description="Bundle folder path or a bundle name in "
                                "models.dir.")] = DEFAULT_MODEL_NAME
    backend: Annotated[Literal["litert", "tf"], Field(description="litert: TFLite exported from the "
                                                      "Keras bundle (fastest on CPU); tf: tf.function "
                                                      "with padded batch sizes.")] = "litert"
    max_batch: Annotated[int, Field(ge=1, le=256, description="Most faces per classifier call.")] = 32
    max_wait_ms: Annotated[float, Field(ge=0.0, le=1000.0, description="Longest a detected face of a file "
                                        "read whole waits for batch-mates (a live camera's faces do not "
                                        "wait: its next frame is a frame period away).")] = 5.0
    threads: Annotated[int, Field(ge=0, le=64, description="Classifier threads per worker; 0 means 1.")] = 0
    align: Annotated[bool, Field(description="Rotate each face crop so the eyes are level before classifying, "
                                 "where the detector gives the face's roll (BlazeFace landmarks, or a Haar face "
                                 "found turned).")] = True


class WorkerSettings(_Section):
    count: Annotated[int, Field(ge=0, le=256, description="Inference worker processes; 0 means one per "
                                "core; with tracking, one per camera up to two per core.")] = 0
    heartbeat_seconds: Annotated[float, Field(ge=0.1, le=60.0, description="Interval of worker "
                                              "liveness messages.")] = 1.0
    local: Annotated[bool, Field(description="`emotiond run` starts its own workers; false when every worker "
                                 "runs elsewhere as `emotiond worker` (other hosts, containers, pods).")] = True


class MetricsSettings(_Section):
    enabled: Annotated[bool, Field(description="Serve /metrics.")] = True
    host: Annotated[str, Field(min_length=1, description="Bind address of /metrics.")] = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535, description="Port of /metrics (0 picks a free one).")] = 9108


class SupervisorSettings(_Section):
    max_restarts_per_minute: Annotated[int, Field(ge=0, le=600, description="Restarts of one role "
                                                  "allowed per minute before backing off.")] = 10
    restart_backoff_max_seconds: Annotated[float, Field(ge=0.1, le=600.0, description="Cap of the "
                                                        "delay between restarts.")] = 30.0
    stall_seconds: Annotated[float, Field(ge=1.0, le=3600.0, description="A child whose loop has not "
                                          "ticked for this long is killed and restarted.")] = 30.0
    stop_timeout_seconds: Annotated[float, Field(ge=0.5, le=120.0, description="Grace time for "
                                                 "children on shutdown before SIGKILL.")] = 4.0


class ModelsSettings(_Section):
    dir: Annotated[Path, Field(description="Model bundle cache.")] = Field(default_factory=default_models_dir)


class LoggingSettings(_Section):
    level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], Field(description="Log level.")] = "INFO"
    opencv: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], Field(
        description="Least level of OpenCV's and FFmpeg's own messages (camera and stream opening) that the "
                    "capture process logs, each distinct message once (again only at DEBUG).")] = "ERROR"


class SecuritySettings(_Section):
    """CURVE for tcp endpoints. Binding tcp beyond loopback is refused unless the server half is set."""

    server_secret_key: Annotated[Path | None, Field(description="Daemon: the server's .key_secret file; "
                                                    "makes bound tcp sockets CURVE servers.")] = None
    authorized_keys_dir: Annotated[Path | None, Field(description="Daemon: folder of client public .key "
                                                      "files allowed to connect (ZAP allow-list).")] = None
    server_public_key: Annotated[Path | None, Field(description="Clients and workers: the server's public "
                                                    ".key file, to authenticate the daemon.")] = None
    client_secret_key: Annotated[Path | None, Field(description="Clients and workers: this side's "
                                                    ".key_secret file; its public key must be allowed.")] = None

    @model_validator(mode="after")
    def _halves_are_whole(self) -> SecuritySettings:
        if (self.server_secret_key is None) != (self.authorized_keys_dir is None):
            raise ValueError("server_secret_key and authorized_keys_dir go together")
        if (self.server_public_key is None) != (self.client_secret_key is None):
            raise ValueError("server_public_key and client_secret_key go together")
        return self

    @property
    def server_configured(self) -> bool:
        """Binding sockets become CURVE servers with a ZAP allow-list."""
        return self.server_secret_key is not None and self.authorized_keys_dir is not None

    @property
    def client_configured(self) -> bool:
        """Connecting sockets present a CURVE identity and check the server's key."""
        return self.server_public_key is not None and self.client_secret_key is not None


class WebSettings(_Section):
    """The web console and HTTP API (``emotiond web``; started by ``emotiond run`` when enabled)."""

    enabled: Annotated[bool, Field(description="Start the web console with `emotiond run`.")] = False
    host: Annotated[str, Field(min_length=1, max_length=255, description="Bind address. Anything but loopback "
                               "needs a token.")] = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535, description="HTTP port (0 picks a free one).")] = 8108
    token: Annotated[SecretStr | None, Field(description="Shared secret of 16 to 256 printable characters: sent "
                                             "as 'Authorization: Bearer TOKEN' or entered once in the login form "
                                             "(which sets a cookie). Never accepted in a URL, never logged.")] = None
    max_upload_bytes: Annotated[int, Field(ge=1024, le=64 << 20, description="Largest photo accepted by "
                                           "POST /api/analyze; larger bodies get 413.")] = 8 << 20
    max_upload_pixels: Annotated[int, Field(ge=64 * 64, le=50_000_000, description="Largest photo in pixels "
                                            "(read from its header before decoding).")] = 16_000_000
    max_streams: Annotated[int, Field(ge=1, le=1024, description="Concurrent MJPEG streams and WebSockets; "
                                      "more get 503.")] = 32
    stream_fps: Annotated[float, Field(gt=0.0, le=60.0, description="Default frame rate of MJPEG streams and "
                                       "the page's video (?fps= asks for less or more, up to max_stream_fps).")] = 10.0
    max_stream_fps: Annotated[float, Field(gt=0.0, le=60.0, description="Highest ?fps= a stream may ask "
                                           "for.")] = 30.0
    jpeg_quality: Annotated[int, Field(ge=10, le=100, description="Quality of the JPEGs the console "
                                       "encodes.")] = 80
    events_ring: Annotated[int, Field(ge=10, le=100_000, description="Recent results and change events kept in "
                                      "memory for GET /api/events.")] = 2000
    users_file: Annotated[Path | None, Field(description="The console's users and their scrypt-hashed passwords "
                                             "(mode 0600; `emotiond web users add`). The sessions database and a "
                                             "self-signed certificate are kept beside it. Default: "
                                             "web-users.json in the state folder ($XDG_STATE_HOME/emotiond or "
                                             "~/.local/state/emotiond).")] = None
    session_hours: Annotated[float, Field(gt=0.0, le=24 * 365, description="A login session ends this long after "
                                          "it began (logout, a password change or removing the user end it "
                                          "sooner).")] = 12.0
    tls: Annotated[Literal["off", "self-signed", "files"], Field(
        description="HTTPS: 'off', 'self-signed' (a certificate made once and kept in the state folder; its "
                    "fingerprint is logged) or 'files' (tls_cert_file and tls_key_file).")] = "off"
    tls_cert_file: Annotated[Path | None, Field(description="PEM certificate chain when tls = 'files'.")] = None
    tls_key_file: Annotated[Path | None, Field(description="PEM private key when tls = 'files'.")] = None
    allow_plain_http: Annotated[bool, Field(description="Serve plain HTTP beyond loopback: only behind a "
                                            "TLS-terminating reverse proxy.")] = False

    def users_path(self) -> Path:
        return self.users_file or default_state_dir() / "web-users.json"

    @field_validator("token")
    @classmethod
    def _token_is_bounded(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None:
            value = token.get_secret_value()
            if not 16 <= len(value) <= 256 or not value.isprintable() or value != value.strip():
                raise ValueError("token must be 16 to 256 printable characters, without surrounding spaces")
        return token

    @field_serializer("token", when_used="json")
    def _token_for_child_processes(self, token: SecretStr | None, info: SerializationInfo) -> str | None:
        """``emotiond run`` hands its settings to the web process as JSON data; the token must survive that.
        Printing a Settings object, or ``to_toml`` (``config show``), still shows it masked."""
        if token is None:
            return None
        return str(token) if (info.context or {}).get(MASK_SECRETS) else token.get_secret_value()

    @model_validator(mode="after")
    def _exposed_host_needs_token(self) -> WebSettings:
        host = f"[{self.host}]" if ":" in self.host else self.host
        exposed = is_exposed(f"tcp://{host}:{self.port}")
        if exposed and self.token is None and not self.users_path().is_file():
            raise ValueError(f"binding the web console on {self.host} (beyond loopback) requires a user "
                             "(emotiond web users add NAME) or [web] token (or EMOTIOND_WEB__TOKEN)")
        if exposed and self.tls == "off" and not self.allow_plain_http:
            raise ValueError(f"binding the web console on {self.host} (beyond loopback) without TLS is refused: "
                             "set [web] tls = \"self-signed\" or \"files\" (emotiond web --tls self-signed), or, "
                             "behind a TLS-terminating reverse proxy, [web] allow_plain_http = true")
        if self.tls == "files" and (self.tls_cert_file is None or self.tls_key_file is None):
            raise ValueError("[web] tls = \"files\" needs tls_cert_file and tls_key_file")
        if self.stream_fps > self.max_stream_fps:
            raise ValueError("web.stream_fps must be <= web.max_stream_fps")
        return self


MQTT_TOPIC_PATTERN = r"^[A-Za-z0-9_.-]{1,64}(/[A-Za-z0-9_.-]{1,64}){0,7}$"
MQTT_PASSWORD_ENV = "EMOTIOND_MQTT_PASSWORD"


class MqttSettings(_Section):
    """The MQTT bridge (``emotiond mqtt``; started by ``emotiond run`` when enabled): events, retained states and
    Home Assistant discovery on a broker."""

    enabled: Annotated[bool, Field(description="Start the MQTT bridge with `emotiond run`.")] = False
    url: Annotated[str, Field(min_length=8, max_length=512, description="Broker: mqtt://HOST[:PORT] (default port "
                              "1883) or mqtts://HOST[:PORT] (TLS, default port 8883). Credentials never go in the "
                              "URL.")] = "mqtt://127.0.0.1:1883"
    topic_prefix: Annotated[str, Field(pattern=MQTT_TOPIC_PATTERN, description="First topic levels of everything "
                                       "the bridge publishes (PREFIX/available, PREFIX/events, ...).")] = "emotiond"
    discovery: Annotated[bool, Field(description="Publish Home Assistant MQTT discovery configs (retained) for "
                                     "every camera.")] = True
    discovery_prefix: Annotated[str, Field(pattern=MQTT_TOPIC_PATTERN, description="Home Assistant's discovery "
                                           "prefix.")] = "homeassistant"
    update_interval: Annotated[float, Field(ge=0.1, le=3600.0, description="An 'update' event goes out when a "
                                            "face's smoothed emotion changes, otherwise at most this often (s) "
                                            "per face.")] = 5.0
    stats_interval: Annotated[float, Field(ge=1.0, le=86_400.0, description="Seconds between PREFIX/stats "
                                           "messages.")] = 60.0
    snapshots: Annotated[bool, Field(description="Publish PREFIX/CAMERA/snapshot, a JPEG of the annotated frame, "
                                     "when the dominant emotion changes (makes workers encode frames).")] = False
    snapshot_quality: Annotated[int, Field(ge=10, le=100, description="JPEG quality of snapshots.")] = 80
    qos: Annotated[int, Field(ge=0, le=2, description="QoS of published messages; 1 or 2 re-send what was in "
                                 "flight when the connection dropped.")] = 1
    keepalive: Annotated[int, Field(ge=5, le=3600, description="MQTT keepalive (s): the broker sends the last "
                                    "will after 1.5 times this without traffic.")] = 30
    client_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{0,64}$", description="MQTT client id; empty means "
                                    "emotiond-HOSTNAME-PID.")] = ""
    tls_ca_file: Annotated[Path | None, Field(description="CA certificates (PEM) that sign the broker's "
                                              "certificate, for mqtts://; unset uses the system's.")] = None
    username: Annotated[str | None, Field(min_length=1, max_length=256, description="Username for the broker; "
                                          "the password comes from password_file or password_env.")] = None
    password_file: Annotated[Path | None, Field(description="File holding the broker password (first line). "
                                                "Never logged.")] = None
    password_env: Annotated[str, Field(pattern=ENV_NAME_PATTERN, description="Environment "
                                       "variable read for the password when password_file is unset.")] = (
        MQTT_PASSWORD_ENV)
    queue_size: Annotated[int, Field(ge=1, le=1_000_000, description="Messages held while the broker is away; "
                                     "past this the oldest is dropped and counted (emotiond_mqtt_dropped_total)."
                                     )] = 10_000
    reconnect_max_seconds: Annotated[float, Field(ge=0.5, le=600.0, description="Cap of the exponential backoff "
                                                  "between connection attempts (the first waits 0.5 s).")] = 30.0

    @field_validator("url")
    @classmethod
    def _url_is_a_broker(cls, url: str) -> str:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"not a broker URL: {exc}") from None
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError("must start with mqtt:// or mqtts://")
        if parts.username is not None or parts.password is not None:
            raise ValueError("credentials do not go in the URL: set [mqtt] username and password_file or "
                             "password_env")
        if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("must be mqtt[s]://HOST[:PORT] with nothing after the port")
        if port == 0:
            raise ValueError("port must be 1-65535")
        return url

    @model_validator(mode="after")
    def _tls_needs_mqtts(self) -> MqttSettings:
        if self.tls_ca_file is not None and not self.url.startswith("mqtts://"):
            raise ValueError("mqtt.tls_ca_file needs an mqtts:// url")
        return self


class Settings(BaseSettings):
    """Effective configuration of the daemon and its tools."""

    model_config = SettingsConfigDict(
        env_prefix="EMOTIOND_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    sources: Annotated[list[SourceSettings], Field(max_length=64, description="Frame sources.")] = Field(
        default_factory=list)
    capture: CaptureSettings = Field(default_factory=CaptureSettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    detection: DetectionSettings = Field(default_factory=DetectionSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    classifier: ClassifierSettings = Field(default_factory=ClassifierSettings)
    workers: WorkerSettings = Field(default_factory=WorkerSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    supervisor: SupervisorSettings = Field(default_factory=SupervisorSettings)
    models: ModelsSettings = Field(default_factory=ModelsSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    web: WebSettings = Field(default_factory=WebSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)

    @field_validator("sources")
    @classmethod
    def _unique_camera_names(cls, sources: list[SourceSettings]) -> list[SourceSettings]:
        names = [s.name for s in sources]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"camera names must be unique, repeated: {', '.join(duplicates)}")
        return sources

    @model_validator(mode="after")
    def _backoff_is_ordered(self) -> Settings:
        if self.capture.reconnect_max_seconds < self.capture.reconnect_initial_seconds:
            raise ValueError("capture.reconnect_max_seconds must be >= capture.reconnect_initial_seconds")
        return self

    @model_validator(mode="after")
    def _exposed_endpoints_need_curve(self) -> Settings:
        if self.security.server_configured or self.security.client_configured:
            return self
        exposed = [e for e in (self.bus.frames_endpoint, self.bus.results_in_endpoint, self.bus.results_endpoint)
                   if is_exposed(e)]
        if exposed:
            raise ValueError(f"tcp beyond loopback ({', '.join(exposed)}) requires CURVE keys in [security] "
                             "(run `emotiond keys generate`)")
        return self

    def worker_count(self) -> int:
        """Explicit count, or one per core. With tracking a camera stays on one worker, so there is one worker
        per camera (spare cores go to OpenCV threads), up to two per core so the OS balances uneven cameras."""
        if self.workers.count:
            return self.workers.count
        cores = os.cpu_count() or 1
        if self.tracking.enabled and self.sources:
            return max(1, min(2 * cores, len(self.sources)))
        return cores

    def endpoint(self, role: Literal["frames", "results_in", "results"]) -> str:
        """The configured endpoint for a role, or the ipc default in the runtime folder."""
        configured = getattr(self.bus, f"{role}_endpoint")
        return configured or f"ipc://{self.bus.runtime_dir / role}.sock"


def _sources_with(toml_file: Path | None):
    def customise(
        cls: type[BaseSettings],
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    return classmethod(customise)


class ConfigError(UsageError):
    """A configuration problem, already formatted one line per error with its key path."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


def load_settings(config_file: Path | str | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Build settings from defaults, an optional TOML file, the environment and overrides.

    Raises ConfigError with one line per problem (key path and message).
    """
    toml_path = Path(config_file) if config_file else None
    if toml_path is not None:
        if not toml_path.is_file():
            raise ConfigError([f"{toml_path}: no such config file"])
        _check_toml_syntax(toml_path)
    _check_env_sections()
    loaded_cls = type("LoadedSettings", (Settings,), {"settings_customise_sources": _sources_with(toml_path)})
    try:
        loaded = loaded_cls(**(overrides or {}))
    except ValidationError as exc:
        lines = format_validation_error(exc, str(toml_path or "settings"))
        raise ConfigError([line + _env_origin(item["loc"]) for line, item in zip(lines, exc.errors(), strict=True)]
                          ) from None
    return Settings.model_validate(loaded.model_dump())


ENV_PREFIX, ENV_DELIMITER = "EMOTIOND_", "__"


def _env_origin(loc: tuple) -> str:
    """`` (from $EMOTIOND_SECTION__KEY)`` when that environment variable set the failing key, else nothing."""
    wanted = (ENV_PREFIX + ENV_DELIMITER.join(str(part) for part in loc)).upper()
    named = [name for name in os.environ if name.upper() == wanted]
    return f" (from ${named[0]})" if named else ""


def _check_env_sections() -> None:
    """An ``EMOTIOND_SECTION__KEY`` variable whose section does not exist would be ignored silently: refuse it."""
    wrong = [name for name in sorted(os.environ) if name.upper().startswith(ENV_PREFIX) and ENV_DELIMITER in name
             and name[len(ENV_PREFIX):].split(ENV_DELIMITER)[0].lower() not in Settings.model_fields]
    if wrong:
        raise ConfigError([f"${name}: unknown section {name[len(ENV_PREFIX):].split(ENV_DELIMITER)[0].lower()!r} "
                           f"(sections: {', '.join(Settings.model_fields)})" for name in wrong])


def _check_toml_syntax(path: Path) -> None:
    import tomllib

    try:
        tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None


def to_toml(settings: Settings) -> str:
    import tomli_w

    data = settings.model_dump(mode="json", context={MASK_SECRETS: True})
    return tomli_w.dumps(_drop_none(data))


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def nest_dotted(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``, leaving out None (flags that were not given)."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        if value is None:
            continue
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


_NAMED_SOURCE = re.compile(rf"^(?P<name>{CAMERA_NAME_PATTERN[1:-1]})=(?P<url>.+)$")


def parse_source_flag(text: str, index: int) -> dict[str, str]:
    """``--source [NAME=]URL``; unnamed sources are called cam0, cam1, ... in order."""
    match = _NAMED_SOURCE.match(text)
    if match and "://" not in match.group("name"):
        return {"name": match.group("name"), "url": match.group("url")}
    return {"name": f"cam{index}", "url": text}
