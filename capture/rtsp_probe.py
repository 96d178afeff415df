"""Why an RTSP camera would not open: one DESCRIBE request, answered in words a user can act on.

OpenCV only says that a stream did not open. When an rtsp:// source fails, the reader asks the camera itself,
with the same credentials (Basic or Digest, as the camera demands), so a wrong password reads as such instead
of as a network fault.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
from urllib.parse import unquote, urlsplit

PROBE_TIMEOUT_SECONDS = 3.0
_CHALLENGE = re.compile(r'(\w+)="?([^",]*)"?')


def _request(sock: socket.socket, url: str, cseq: int, authorization: str | None) -> tuple[int, dict[str, str]]:
    lines = [f"DESCRIBE {url} RTSP/1.0", f"CSeq: {cseq}", "Accept: application/sdp", "User-Agent: emotiond"]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    status_line, *header_lines = head.split("\r\n")
    match = re.match(r"RTSP/\d\.\d (\d{3})", status_line)
    if not match:
        raise OSError("not an RTSP answer")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return int(match.group(1)), headers


def _authorization(challenge: str, user: str, password: str, url: str) -> str | None:
    scheme, _, params = challenge.partition(" ")
    if scheme.lower() == "basic":
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    if scheme.lower() == "digest":
        fields = dict(_CHALLENGE.findall(params))
        realm, nonce = fields.get("realm", ""), fields.get("nonce", "")
        ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()  # RTSP Digest is MD5 by definition
        ha2 = hashlib.md5(f"DESCRIBE:{url}".encode()).hexdigest()
        response = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
        return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{url}", '
                f'response="{response}"')
    return None


def diagnose(url: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> tuple[str, str]:
    """Why the camera at ``url`` cannot be read: a metric reason (``auth_failed`` or ``open_failed``) and a short
    text that never repeats the password."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 554
    clean = parts._replace(netloc=f"{host}:{port}" if parts.port else host).geturl()
    user = unquote(parts.username or "")
    password = unquote(parts.password or "")
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            status, headers = _request(sock, clean, 1, None)
            if status == 401 and user:
                authorization = _authorization(headers.get("www-authenticate", ""), user, password, clean)
                if authorization:
                    status, headers = _request(sock, clean, 2, authorization)
    except TimeoutError:
        return "open_failed", "the camera did not answer (timed out)"
    except ConnectionRefusedError:
        return "open_failed", "connection refused (nothing listens on that port)"
    except OSError as exc:
        return "open_failed", f"cannot reach the camera ({exc.strerror or exc})"
    if status == 401:
        return "auth_failed", ("the camera refused the user name or password (RTSP 401)" if user
                               else "the camera wants a user name and password (RTSP 401)")
    if status == 404:
        return "open_failed", "no such stream path on the camera (RTSP 404)"
    if status >= 400:
        return "open_failed", f"the camera answered RTSP {status}"
    return "open_failed", "the camera answers, but its stream could not be decoded"
