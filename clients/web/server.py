"""Assembling and running the console: the aiohttp application, its bus hub, and the loop that serves it
until asked to stop (by a signal for ``emotiond web``, by the supervisor for ``emotiond run``)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from emotiond.clients.web import context, routes
from emotiond.clients.web.analysis import PhotoAnalysis
from emotiond.clients.web.auth import Guard, PathAccessLogger
from emotiond.clients.web.history_access import HistoryAccess
from emotiond.clients.web.history_api import HISTORY
from emotiond.clients.web.hub import Hub
from emotiond.clients.web.responses import json_errors
from emotiond.clients.web.sessions import SessionStore, sessions_path
from emotiond.clients.web.tls import server_context
from emotiond.clients.web.users import UserStore
from emotiond.core.settings import Settings

log = logging.getLogger(__name__)
ENCODER_THREADS = 2  # JPEG encoding releases the GIL; two threads keep up with several cameras on 2 cores
UPLOAD_SLACK_BYTES = 64 * 1024  # multipart framing around an upload of max_upload_bytes
STOP_CHECK_SECONDS = 0.5
# How every runner of the app serves it (tests use the same): the access log records paths without queries, and a
# client that goes away cancels its handler at once, so a stream's viewer slot is released at once.
RUNNER_OPTIONS = {"access_log_class": PathAccessLogger, "handler_cancellation": True}


def build_app(settings: Settings, endpoint: str | None, messages: Mapping[str, Sequence[str]]) -> web.Application:
    """The application, its bus hub reading ``endpoint`` (default: the settings' results endpoint) from startup
    to cleanup."""
    token = settings.web.token.get_secret_value() if settings.web.token is not None else None
    users_path = settings.web.users_path()
    sessions = SessionStore(sessions_path(users_path))
    guard = Guard(token, UserStore(users_path), sessions, settings.web.session_hours,
                  secure_cookie=settings.web.tls != "off")
    app = web.Application(middlewares=[json_errors, guard.middleware],
                          client_max_size=settings.web.max_upload_bytes + UPLOAD_SLACK_BYTES)
    executor = ThreadPoolExecutor(max_workers=ENCODER_THREADS, thread_name_prefix="web-encode")
    hub = Hub(settings, endpoint or settings.endpoint("results"), messages, executor)
    analysis = PhotoAnalysis(settings, messages)
    app[context.HUB] = hub
    app[context.GUARD] = guard
    app[context.ANALYSIS] = analysis
    app[context.SETTINGS] = settings
    app[context.STATIC] = routes.load_static()
    app[context.STATS_CACHE] = {}
    history = app[HISTORY] = HistoryAccess(settings)
    routes.add_routes(app)

    async def bus_reader(app: web.Application):
        task = asyncio.create_task(hub.run(), name="web-bus")
        yield
        hub.stop()
        await task
        hub.close()
        analysis.close()
        executor.shutdown(wait=True, cancel_futures=True)
        sessions.close()
        history.close()

    app.cleanup_ctx.append(bus_reader)
    return app


async def serve(settings: Settings, endpoint: str | None, messages: Mapping[str, Sequence[str]],
                should_stop: Callable[[], bool], tick: Callable[[], None] = lambda: None) -> None:
    """Serve until ``should_stop()``; ``tick()`` runs every half second (the supervisor's heartbeat)."""
    ssl_context = server_context(settings.web)
    app = build_app(settings, endpoint, messages)
    guard = app[context.GUARD]
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0, **RUNNER_OPTIONS)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.web.host, settings.web.port, ssl_context=ssl_context)
        await site.start()
        for address in runner.addresses:
            host, port = address[0], address[1]
            shown = f"[{host}]" if ":" in host else host
            log.info("web console on %s://%s:%d/ (%s)", "https" if ssl_context else "http", shown, port,
                     "login required" if guard.enabled else "loopback only, no users")
        while not should_stop():
            tick()
            await asyncio.sleep(STOP_CHECK_SECONDS)
    finally:
        await runner.cleanup()


def run_standalone(settings: Settings, endpoint: str | None, messages: Mapping[str, Sequence[str]]) -> int:
    """``emotiond web``: serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve(settings, endpoint, messages, stop.is_set)

    try:
        asyncio.run(main())
    except OSError as exc:  # the port is taken, the address is not ours
        from emotiond.core.errors import UsageError

        raise UsageError(f"cannot serve on {settings.web.host}:{settings.web.port}: {exc.strerror or exc}") from None
    return 0
