"""parley's one HTTP server: probes, metrics, the OpenAPI document and the chat API.

Other front doors mount their routes on `app` before `start()` (Slack's Events API:
`server.app.add_routes(door.routes())`), so one port serves everything and the same middleware
(JSON errors, security headers, CORS) applies to all of it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

import core.metrics  # noqa: F401 - registers parley's series before the first scrape
from bots.http.chat import ChatApi
from bots.http.connections import (
    MAX_CONNECTIONS,
    GuardedRunner,
    body_deadline,
    quiet_loop_errors,
    raise_file_limit,
)
from bots.http.middleware import error_middleware, preflight_middleware, response_headers
from bots.http.openapi import openapi_document
from bots.http.settings import HttpSettings
from core.engine import Engine

log = structlog.get_logger(__name__)

ReadinessCheck = Callable[[], Awaitable[bool]] | Callable[[], bool]
CHECK_TIMEOUT = 2.0
"""A readiness check slower than this counts as failing: a probe must answer quickly."""
ENGINE_CHECK = "engine"
"""The check every server has: the engine is taking turns (False while draining)."""
SHUTDOWN_TIMEOUT = 5.0


class HttpServer:
    """Serves on settings.http_host:http_port; `await start()`, later `await stop()`."""

    def __init__(
        self,
        engine: Engine,
        settings: HttpSettings,
        *,
        readiness: Mapping[str, ReadinessCheck],
        check_timeout: float = CHECK_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self._max_connections = max_connections
        self._engine = engine
        self._settings = settings
        self._readiness = dict(readiness)
        self._check_timeout = check_timeout
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self.chat: ChatApi | None = None
        self._app = self._build()

    @property
    def app(self) -> web.Application:
        """The aiohttp application: add routes to it before `start()`."""
        return self._app

    @property
    def port(self) -> int:
        """The port bound by `start()` (the real one when settings.http_port is 0)."""
        if self._port is None:
            raise RuntimeError("HttpServer.port is known only after start()")
        return self._port

    async def start(self) -> None:
        """Bind and serve; raises OSError when the address is taken."""
        raise_file_limit()
        quiet_loop_errors(asyncio.get_running_loop())
        runner = GuardedRunner(
            self._app,
            max_connections=self._max_connections,
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._settings.http_host, self._settings.http_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        log.info("http_started", host=self._settings.http_host, port=self._port)

    async def stop(self) -> None:
        """Stop listening, close WebSockets, and let in-flight requests end (briefly).

        Drain the engine first: then /readyz says "not ready" while replies finish.
        """
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            log.info("http_stopped")

    # -- the application ---------------------------------------------------------------------
    def _build(self) -> web.Application:
        settings = self._settings
        origins = frozenset(settings.cors_origin_list)
        middlewares = [error_middleware(settings.api_max_body_bytes), body_deadline()]
        if origins:
            middlewares.append(preflight_middleware(origins))
        app = web.Application(middlewares=middlewares, client_max_size=settings.api_max_body_bytes)
        app.on_response_prepare.append(response_headers(origins))
        app.add_routes(
            [
                web.get("/healthz", self._healthz),
                web.get("/readyz", self._readyz),
                web.get("/metrics", self._metrics),
                web.get("/openapi.json", self._openapi),
            ]
        )
        if settings.api_token is not None and settings.api_token.get_secret_value():
            self.chat = ChatApi(
                self._engine,
                settings.api_token.get_secret_value(),
                max_message_bytes=settings.api_max_body_bytes,
            )
            app.add_routes(self.chat.routes())
            app.on_shutdown.append(self.chat.close_sockets)
        return app

    # -- probes and documents ------------------------------------------------------------------
    async def _healthz(self, request: web.Request) -> web.Response:
        """Liveness: the process is up and its event loop answers."""
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        """Readiness: every named check passes and the engine is taking turns."""
        names = list(self._readiness)
        results = await asyncio.gather(*(self._check(n, self._readiness[n]) for n in names))
        checks = {ENGINE_CHECK: self._engine.accepting, **dict(zip(names, results, strict=True))}
        failing = [name for name, ok in checks.items() if not ok]
        if failing:
            body = {"status": "not ready", "checks": checks, "failing": failing}
            return web.json_response(body, status=503)
        return web.json_response({"status": "ready", "checks": checks})

    async def _check(self, name: str, check: ReadinessCheck) -> bool:
        """One check: False when it says so, raises, or takes longer than the timeout."""
        try:
            async with asyncio.timeout(self._check_timeout):
                result = check()
                if inspect.isawaitable(result):
                    result = await result
                return result is True
        except Exception as exc:  # TimeoutError included
            log.warning("readiness_check_failed", check=name, error=type(exc).__name__)
            return False

    async def _metrics(self, request: web.Request) -> web.Response:
        """Prometheus exposition of the default registry (parley_* and process metrics)."""
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _openapi(self, request: web.Request) -> web.Response:
        """The chat API's OpenAPI 3.1 document."""
        return web.json_response(openapi_document())
