"""What a stranger can pile up on parley's HTTP port, bounded.

- A request must arrive whole within REQUEST_SECONDS: aiohttp closes a connection whose
  request is not complete by its keep-alive deadline, which starts when the connection
  opens (half-sent headers included), and an idle keep-alive connection then too; a body
  that trickles in slower is answered 408 by `body_deadline`.
- At most MAX_CONNECTIONS are open at once; the ones past it are closed at once, before a
  file descriptor shortage can stop /healthz (measured before: 300 idle connections ran
  the process out of descriptors, and the probes and the API timed out).
- The soft limit on open files is raised to the hard one at start.
- The event loop's repeated errors (accept() failing for want of descriptors) are logged
  once per LOG_EVERY seconds with a count, not once per attempt (87 MB in 35 s before).
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware
from aiohttp.web_protocol import RequestHandler

from bots.http.errors import ApiError

log = structlog.get_logger(__name__)

REQUEST_SECONDS = 5.0
MAX_CONNECTIONS = 1000
FILE_LIMIT = 65_536  # the most open files asked for, when the hard limit allows more
LOG_EVERY = 10.0
HEARTBEAT_SECONDS = 30.0  # WebSocket pings: a client gone silent is noticed and closed

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class GuardedRunner(web.AppRunner):
    """An AppRunner whose server refuses connections past `max_connections`."""

    def __init__(self, app: web.Application, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=REQUEST_SECONDS, **kwargs)
        self._max_connections = max_connections

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return _GuardedServer.adopt(made, self._max_connections)


class _GuardedServer(web.Server):
    max_connections = MAX_CONNECTIONS
    refused = 0

    @classmethod
    def adopt(cls, server: web.Server, max_connections: int) -> web.Server:
        server.__class__ = cls  # the same server, with the cap (aiohttp builds it itself)
        server.max_connections = max_connections  # type: ignore[attr-defined]
        server.refused = 0  # type: ignore[attr-defined]
        return server

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        if len(self._connections) > self.max_connections:
            self.refused += 1
            transport.abort()  # no reply: an answer would take the very resources at stake


def body_deadline() -> Middleware:
    """Read a request's body within REQUEST_SECONDS, or answer 408."""

    @web.middleware
    async def deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.body_exists:
            try:
                async with asyncio.timeout(REQUEST_SECONDS):
                    await request.read()  # kept by aiohttp: the handler's read is instant
            except TimeoutError:
                raise ApiError(
                    408, "request_timeout", "The request's body did not arrive in time."
                ) from None
        return await handler(request)

    return deadline


def raise_file_limit() -> int:
    """Raise the soft limit on open files as far as the hard one allows (up to FILE_LIMIT)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FILE_LIMIT if hard == resource.RLIM_INFINITY else min(FILE_LIMIT, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            log.warning("file_limit_not_raised", soft=soft, hard=hard)
    return int(soft)


def quiet_loop_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Log the loop's repeated error contexts once per LOG_EVERY seconds each, with a count."""
    last: dict[str, float] = {}
    skipped: dict[str, int] = {}

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", "event loop error"))
        now = time.monotonic()
        if now - last.get(message, -LOG_EVERY) < LOG_EVERY:
            skipped[message] = skipped.get(message, 0) + 1
            return
        last[message] = now
        error = context.get("exception")
        log.error(
            "event_loop_error",
            message=message,
            error=type(error).__name__ if error is not None else None,
            detail=str(error) if error is not None else None,
            repeated=skipped.pop(message, 0),
        )

    loop.set_exception_handler(handle)
