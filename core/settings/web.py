"""[web]: the web console and HTTP API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, SerializationInfo, field_serializer, field_validator, model_validator

from emotiond.core.endpoints import is_exposed
from emotiond.core.settings.base import MASK_SECRETS, _Section, default_state_dir


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
