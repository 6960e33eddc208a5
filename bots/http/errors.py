"""One JSON error shape for every failure the HTTP server answers: {"error": {code, message}}."""

from __future__ import annotations

from typing import Any

from aiohttp import web


class ApiError(Exception):
    """An answer that is an error: raised by handlers, rendered by the error middleware.

    `retry_after` (seconds) becomes a Retry-After header and a field of the error body.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The error object, as sent in a JSON body or an `error` stream event."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.retry_after is not None:
            error["retry_after"] = self.retry_after
        return error

    def response(self) -> web.Response:
        """This error as an HTTP response."""
        extra = dict(self.headers)
        if self.retry_after is not None:
            extra["Retry-After"] = str(self.retry_after)
        return web.json_response({"error": self.body()}, status=self.status, headers=extra)


# aiohttp's own exceptions (no route, wrong method, body too big) keep their status; these
# are the codes and sentences we show for them instead of aiohttp's plain-text pages.
_HTTP_ERRORS = {
    400: ("bad_request", "The request could not be read."),
    404: ("not_found", "There is nothing at this address."),
    405: ("method_not_allowed", "This address does not accept that method."),
    413: ("too_large", "The request body is too large."),
}


def from_http_exception(exc: web.HTTPException) -> ApiError:
    """Our error for an aiohttp HTTP exception (404, 405, 413, ...), keeping its Allow header."""
    code, message = _HTTP_ERRORS.get(exc.status, ("http_error", exc.reason))
    allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return ApiError(exc.status, code, message, headers=allow)
