"""The console comes back by itself: the web role SIGKILLed under ``emotiond run`` is restarted by the supervisor,
and a Chromium page logged in through the form, left open, gets its WebSocket and video back on its own, both
after that and after the whole daemon restarts (the session, kept on disk, outlives both)."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.error
import urllib.request

import pytest
from test_web_browser import page_frame

from support.daemon import EMOTIOND, REPO, child_roles, free_port, wait_for
from support.web import chromium  # noqa: F401

USER, PASSWORD = "viewer", "viewer-Passw0rd-77"
pytestmark = pytest.mark.heavy  # two daemon restarts under Chromium: 35-60 s


def web_pids(daemon) -> list[int]:
    return [pid for pid, role in child_roles(daemon).items() if role == "web"]


def answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/api/health", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def test_page_reconnects_after_the_web_role_and_the_daemon_restart(start_daemon, default_model, chromium,  # noqa: F811
                                                                   tmp_path):
    from selenium.webdriver.common.by import By

    state = tmp_path / "state"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"EMOTIOND_WEB__ENABLED": "true", "EMOTIOND_WEB__PORT": str(port), "XDG_STATE_HOME": str(state)}
    added = subprocess.run([*EMOTIOND, "web", "users", "add", USER, "--password-stdin"], cwd=REPO,
                           env={**os.environ, **env}, input=PASSWORD + "\n", capture_output=True, text=True,
                           timeout=60)
    assert added.returncode == 0, added.stderr
    daemon = start_daemon("--source", "demo", "--realtime", "--loop", workers=1, env=env)
    daemon.wait_for(lambda: answers(base), 90, "the web console to answer")

    driver = chromium
    driver.get(f"{base}/")
    wait_for(lambda: driver.current_url.endswith("/login"), 30, "the login form")
    driver.find_element(By.NAME, "user").send_keys(USER)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    badge = wait_for(lambda: driver.find_elements(By.ID, "connection"), 30, "the page after logging in")[0]
    wait_for(lambda: badge.text == "live", 30, "the page's WebSocket")
    seen = wait_for(lambda: page_frame(driver), 60, "a frame on the page", interval=0.2)[0]

    # the web role, SIGKILLed: the supervisor starts a new one and the page reconnects by itself
    [killed] = web_pids(daemon)
    os.kill(killed, signal.SIGKILL)
    wait_for(lambda: badge.text == "offline", 30, "the page to notice the console went away", interval=0.05)
    wait_for(lambda: daemon.metric("emotiond_process_restarts_total", role="web") == 1, 60, "the web role's restart")
    wait_for(lambda: (pids := web_pids(daemon)) and killed not in pids, 60, "a new web process")
    wait_for(lambda: badge.text == "live", 60, "the page's WebSocket to reconnect", interval=0.2)
    seen = wait_for(lambda: (f := page_frame(driver)) and f[0] > seen and f[0], 60, "new frames after the restart",
                    interval=0.2)
    assert driver.current_url == f"{base}/", "the page left for the login form: the session did not survive"

    # the whole daemon, stopped and started again on the same port: the page comes back as well
    assert daemon.stop() == 0
    wait_for(lambda: badge.text == "offline", 30, "the page to notice the daemon stopped", interval=0.05)
    again = start_daemon("--source", "demo", "--realtime", "--loop", workers=1, env=env)
    again.wait_for(lambda: answers(base), 90, "the restarted console to answer")
    wait_for(lambda: badge.text == "live", 60, "the page's WebSocket to reconnect", interval=0.2)
    wait_for(lambda: (f := page_frame(driver)) and f[0] != seen, 60, "frames from the restarted daemon",
             interval=0.2)
    assert driver.current_url == f"{base}/"

    # signing out ends the session: the page's cookie no longer opens the API
    cookie = driver.get_cookie("emotiond_session")["value"]
    driver.find_element(By.CSS_SELECTOR, "#logout button").click()
    wait_for(lambda: driver.current_url.endswith("/login"), 30, "the login form after signing out")
    request = urllib.request.Request(f"{base}/api/cameras", headers={"Cookie": f"emotiond_session={cookie}"})
    try:
        urllib.request.urlopen(request, timeout=10)
        status = 200
    except urllib.error.HTTPError as error:
        status = error.code
    assert status == 401, "the signed-out session still opens the API"
    assert again.stop() == 0
