"""Who may use the web console: loopback without a token, a token (bearer or login cookie) beyond it, never a
credential in a URL or a log, same-origin checks, and the refusal to expose it without a token."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from emotiond.clients.web.auth import COOKIE
from emotiond.core.settings import ConfigError, load_settings

from support.daemon import EMOTIOND, REPO, child_env, free_port, run_cli, wait_for
from support.web import FakeBus, console, run, wait_seen, web_settings

TOKEN = "correct-horse-battery-staple-42"


@pytest.fixture
def fake_bus(tmp_path):
    bus_ = FakeBus(f"ipc://{tmp_path}/results.sock")
    yield bus_
    bus_.close()


def test_token_bearer_login_cookie_and_no_secret_in_urls_or_logs(tmp_path, fake_bus, caplog):
    caplog.set_level(logging.DEBUG)

    async def scenario():
        async with console(web_settings(tmp_path, token=TOKEN), fake_bus.endpoint) as client:
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            refused = await client.get("/api/cameras")
            assert refused.status == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
            assert "Bearer" in (await refused.json())["error"]
            assert (await client.get("/api/cameras", headers={"Authorization": "Bearer wrong-token-wrong-token"})
                    ).status == 401
            assert (await client.get("/api/cameras", headers={"Authorization": TOKEN})).status == 401
            assert (await client.get("/api/cameras", headers=bearer)).status == 200
            assert (await client.get("/api/cameras/cam0/stream", headers={})).status == 401
            assert (await client.get("/ws")).status == 401
            assert (await client.post("/api/analyze", data=b"x")).status == 401
            assert (await client.get("/api/health")).status == 200  # open, for load balancers
            page = await client.get("/", allow_redirects=False)
            assert page.status == 303 and page.headers["Location"] == "/login"

            in_url = await client.get(f"/api/cameras?token={TOKEN}")
            assert in_url.status == 400 and "never accepted in a URL" in (await in_url.json())["error"]
            assert (await client.get(f"/?access_token={TOKEN}", headers=bearer)).status == 400

            form = await client.get("/login")
            assert form.status == 200 and 'name="password"' in await form.text()
            wrong = await client.post("/login", data={"user": "token", "password": "not-the-token-at-all"},
                                      allow_redirects=False)
            assert wrong.status == 401
            assert not client.session.cookie_jar.filter_cookies(client.make_url("/")).get(COOKIE)
            right = await client.post("/login", data={"user": "token", "password": TOKEN}, allow_redirects=False)
            assert right.status == 303 and right.headers["Location"] == "/"
            set_cookie = right.headers["Set-Cookie"]
            assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and TOKEN not in set_cookie
            # the cookie jar now holds the session cookie: the page, the API and the socket open
            assert (await client.get("/")).status == 200
            assert (await client.get("/api/cameras")).status == 200
            ws = await client.ws_connect("/ws")
            assert json.loads((await ws.receive(timeout=10)).data)["topic"] == "hello"
            await ws.close()
            replay = {"Cookie": f"{COOKIE}={right.cookies[COOKIE].value}"}
            out = await client.post("/logout", allow_redirects=False)
            assert out.status == 303
            assert (await client.get("/api/cameras")).status == 401
            assert (await client.get("/api/cameras", headers=replay)).status == 401, "the old cookie still works"

    run(scenario)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "GET /api/cameras 401" in logged, "positive control: requests are logged"
    assert "token POST /login 303" in logged, "the log names who logged in"
    assert "token POST /logout 303" in logged, "the log names who logged out"
    assert "web login: token from 127.0.0.1" in logged
    assert TOKEN not in logged, "the token appears in the log"


def test_failed_logins_are_limited(tmp_path, fake_bus):
    async def scenario():
        async with console(web_settings(tmp_path, token=TOKEN), fake_bus.endpoint) as client:
            wrong_type = await client.post("/login", data=b"token=x", headers={"Content-Type": "text/plain"})
            assert wrong_type.status == 415
            for _ in range(10):
                reply = await client.post("/login", data={"user": "token", "password": "guess-guess-guess"},
                                          allow_redirects=False)
                assert reply.status == 401
            limited = await client.post("/login", data={"user": "token", "password": TOKEN}, allow_redirects=False)
            assert limited.status == 429 and "too many" in (await limited.json())["error"]
            assert 1 <= int(limited.headers["Retry-After"]) <= 60
            stats = await (await client.get("/api/stats", headers={"Authorization": f"Bearer {TOKEN}"})).json()
            assert stats["web"]["logins_failed"] == 10 and stats["web"]["logins_refused"] == 1

    run(scenario)


def test_a_new_token_ends_the_sessions_opened_with_the_old_one(tmp_path, fake_bus):
    async def scenario():
        async with console(web_settings(tmp_path, token=TOKEN), fake_bus.endpoint) as client:
            right = await client.post("/login", data={"user": "token", "password": TOKEN}, allow_redirects=False)
            cookie = {"Cookie": f"{COOKIE}={right.cookies[COOKIE].value}"}
        async with console(web_settings(tmp_path, token=TOKEN), fake_bus.endpoint) as client:
            assert (await client.get("/api/cameras", headers=cookie)).status == 200, "positive control"
        async with console(web_settings(tmp_path, token=TOKEN[::-1]), fake_bus.endpoint) as client:
            assert (await client.get("/api/cameras", headers=cookie)).status == 401

    run(scenario)


def test_a_stream_ends_when_its_session_ends(tmp_path, fake_bus):
    async def scenario():
        async with console(web_settings(tmp_path, token=TOKEN), fake_bus.endpoint) as client:
            await client.post("/login", data={"user": "token", "password": TOKEN}, allow_redirects=False)
            await wait_seen(client, fake_bus, "cam0")
            stream = await client.get("/api/cameras/cam0/stream?fps=1")
            assert stream.status == 200, "positive control: the stream is open"
            assert (await client.post("/api/logout")).status == 200
            started = time.monotonic()
            while await asyncio.wait_for(stream.content.readany(), 30):
                pass  # frames (none here) until the console ends the stream
            assert time.monotonic() - started < 30

    run(scenario)


def test_without_token_only_loopback_names_and_same_origin(tmp_path, fake_bus):
    async def scenario():
        async with console(web_settings(tmp_path), fake_bus.endpoint) as client:
            port = client.port
            assert (await client.get("/api/cameras", headers={"Host": f"localhost:{port}"})).status == 200
            assert (await client.get("/api/cameras", headers={"Host": f"[::1]:{port}"})).status == 200
            rebound = await client.get("/api/cameras", headers={"Host": f"attacker.example:{port}"})
            assert rebound.status == 403 and "loopback" in (await rebound.json())["error"]
            assert (await client.get("/", headers={"Host": "192.168.1.20"})).status == 403

            evil = {"Origin": "http://attacker.example"}
            assert (await client.post("/api/analyze", data=b"x", headers=evil)).status == 403
            same = {"Origin": f"http://127.0.0.1:{port}", "Content-Type": "text/plain"}
            assert (await client.post("/api/analyze", data=b"x", headers=same)).status == 415
            with pytest.raises(Exception, match="403"):
                await client.ws_connect("/ws", headers=evil)
            ws = await client.ws_connect("/ws", headers={"Origin": f"http://127.0.0.1:{port}"})
            await ws.close()
            assert (await client.get("/login", allow_redirects=False)).status == 303  # no login without a token
            policy = (await client.get("/")).headers["Content-Security-Policy"]
            assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
            assert "Content-Security-Policy" not in (await client.get("/static/app.js")).headers

    run(scenario)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "my-server.local", "*"])
def test_exposed_host_needs_a_login_and_tls_or_a_proxy(tmp_path, host):
    users = {"users_file": str(tmp_path / "web-users.json")}
    with pytest.raises(ConfigError, match=r"web: .*requires a user \(emotiond web users add NAME\) or \[web\] token"):
        load_settings(None, {"web": {"host": host, "tls": "self-signed", **users}})
    plain = {"host": host, "token": TOKEN, **users}
    with pytest.raises(ConfigError) as refused:
        load_settings(None, {"web": plain})
    assert "without TLS is refused" in str(refused.value)
    assert 'tls = "self-signed"' in str(refused.value) and "allow_plain_http = true" in str(refused.value)
    assert load_settings(None, {"web": {**plain, "tls": "self-signed"}}).web.host == host
    assert load_settings(None, {"web": {**plain, "allow_plain_http": True}}).web.host == host
    (tmp_path / "web-users.json").write_text('{"version": 1, "users": {}}')
    assert load_settings(None, {"web": {"host": host, "tls": "self-signed", **users}}).web.token is None
    with pytest.raises(ConfigError, match=r"needs tls_cert_file and tls_key_file"):
        load_settings(None, {"web": {"tls": "files"}})
    for loopback in ("127.0.0.1", "::1", "localhost", "127.0.0.53"):
        assert load_settings(None, {"web": {"host": loopback}}).web.token is None
    with pytest.raises(ConfigError, match=r"web\.token: .*16 to 256"):
        load_settings(None, {"web": {"token": "short"}})
    shown = repr(load_settings(None, {"web": {"token": TOKEN}}))
    assert TOKEN not in shown


def test_web_command_refuses_exposure_and_serves_with_a_token(tmp_path):
    env = child_env(tmp_path / "rt")
    refused = run_cli("web", "--host", "0.0.0.0", "--port", str(free_port()), env=env, timeout=60)
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1 and "token" in refused.stderr, refused.stderr
    assert "users add" in refused.stderr and "Traceback" not in refused.stderr
    env["EMOTIOND_WEB__TOKEN"] = TOKEN
    plain = run_cli("web", "--host", "0.0.0.0", "--port", str(free_port()), env=env, timeout=60)
    assert plain.returncode == 2 and len(plain.stderr.strip().splitlines()) == 1, plain.stderr
    assert "--tls self-signed" in plain.stderr and "allow_plain_http" in plain.stderr
    env["EMOTIOND_WEB__ALLOW_PLAIN_HTTP"] = "true"

    port = free_port()
    log_path = tmp_path / "web.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen([*EMOTIOND, "web", "--host", "0.0.0.0", "--port", str(port)], cwd=REPO,
                                   env=env, stdout=log_file,
                                   stderr=subprocess.STDOUT)
    try:
        def get(path: str, token: str | None = None) -> int:
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
            if token:
                request.add_header("Authorization", f"Bearer {token}")
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return response.status
            except urllib.error.HTTPError as error:
                return error.code
            except OSError:
                return 0

        wait_for(lambda: get("/api/health") == 200, 30, "emotiond web to answer")
        assert get("/api/cameras") == 401
        assert get("/api/cameras", TOKEN) == 200
        assert get(f"/api/cameras?token={TOKEN}") == 400
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    text = log_path.read_text()
    assert "web console on http://0.0.0.0:" in text and "login required" in text
    assert "GET /api/cameras 400" in text, "positive control: the refused URL was logged"
    assert TOKEN not in text


def test_web_command_on_a_busy_port_is_a_usage_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_cli("web", "--port", str(port), env=child_env(tmp_path / "rt"), timeout=60)
    assert busy.returncode == 2, busy.stderr
    assert f"cannot serve on 127.0.0.1:{port}" in busy.stderr and "Traceback" not in busy.stderr


def test_tls_from_files_loads_them_and_bad_files_are_a_clear_error(tmp_path):
    import ssl

    from emotiond.clients.web.tls import make_self_signed, server_context
    from emotiond.core.errors import UsageError

    cert, key = make_self_signed(tmp_path / "pki", "192.168.1.20")
    from cryptography import x509

    names = x509.load_pem_x509_certificate(cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert {"127.0.0.1", "::1", "192.168.1.20"} <= {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    web = load_settings(None, {"web": {"tls": "files", "tls_cert_file": str(cert), "tls_key_file": str(key)}}).web
    assert isinstance(server_context(web), ssl.SSLContext)
    assert load_settings(None, {"web": {"tls": "off"}}).web.tls == "off"
    for bad_cert, bad_key in ((tmp_path / "missing.pem", key), (cert, cert)):
        web = load_settings(None, {"web": {"tls": "files", "tls_cert_file": str(bad_cert),
                                           "tls_key_file": str(bad_key)}}).web
        with pytest.raises(UsageError, match="web TLS: cannot load certificate"):
            server_context(web)
