"""What every response gets: JSON errors, security headers, and CORS for listed origins only.

Headers are added in `on_response_prepare` rather than in a middleware, because streamed
responses (SSE, WebSocket) are already on the wire when a handler returns, and error
responses built by the error middleware must carry them too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from bots.http.errors import ApiError, from_http_exception

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",  # replies and probes are never worth caching
}
CORS_METHODS = "GET, POST, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type, Accept"
CORS_MAX_AGE = "600"
CRASH_MESSAGE = "Something went wrong on my side. Please try again."


def error_middleware(max_body_bytes: int) -> Middleware:
    """Turn every failure into {"error": {...}}: our ApiError, aiohttp's 404/405/413, crashes."""

    @web.middleware
    async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return exc.response()
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            error = from_http_exception(exc)
            if exc.status == 413:
                error.message = f"The request body is too large (at most {max_body_bytes} bytes)."
            return error.response()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("http_handler_crashed", path=request.path)
            return ApiError(500, "internal_error", CRASH_MESSAGE).response()

    return json_errors


def preflight_middleware(origins: Collection[str]) -> Middleware:
    """Answer CORS preflight requests from listed origins; refuse the others."""

    @web.middleware
    async def preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return await handler(request)
        if request.headers.get("Origin") not in origins:
            raise ApiError(403, "origin_not_allowed", "This origin may not call the API.")
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": CORS_METHODS,
                "Access-Control-Allow-Headers": CORS_HEADERS,
                "Access-Control-Max-Age": CORS_MAX_AGE,
            },
        )

    return preflight


def response_headers(
    origins: Collection[str],
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """An on_response_prepare hook: security headers always, CORS headers for listed origins."""

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not origins:
            return
        response.headers.add("Vary", "Origin")
        origin = request.headers.get("Origin")
        if origin is not None and origin in origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = "Retry-After"

    return add_headers
