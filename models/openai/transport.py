"""The HTTP transport under the openai SDK: its aiohttp client, with httpx2's errors.

Measured at 200 streams (tests/bench/stream_bench.py): the SDK's aiohttp transport costs
about 40% less CPU per chunk and a third per request of its default httpx2 one.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx2
import openai


def aiohttp_client() -> httpx2.AsyncClient:
    """The SDK's aiohttp transport (aiohttp is one of parley's dependencies, so it is always
    there), its errors made to match httpx2's.

    Measured at 200 streams (tests/bench/stream_bench.py), with the rest unchanged: about 40%
    less CPU per chunk and a third of the CPU per request of httpx2's, whose every read
    re-registers the socket with epoll and enters an anyio cancel scope."""
    return _AiohttpClient()


class _AiohttpClient(openai.DefaultAioHttpClient):
    """openai.DefaultAioHttpClient, its transports wrapped in _HonestErrors (proxies too)."""

    def _init_transport(self, *args: Any, **kwargs: Any) -> httpx2.AsyncBaseTransport:
        return _HonestErrors(super()._init_transport(*args, **kwargs))

    def _init_proxy_transport(self, *args: Any, **kwargs: Any) -> httpx2.AsyncBaseTransport:
        return _HonestErrors(super()._init_proxy_transport(*args, **kwargs))


class _HonestErrors(httpx2.AsyncBaseTransport):
    """The errors httpx2's own transport would raise, from the SDK's aiohttp adapter: it calls
    every failed or lost connection (refused, reset, closed) a ConnectTimeout, so the SDK would
    report a timeout, and lets aiohttp's other errors through, which the SDK neither retries
    nor wraps. The body's errors are mapped where it is read (`OpenAILLM.stream`)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            return await self._inner.handle_async_request(request)
        except httpx2.ConnectTimeout as exc:
            if timed_out(exc):
                raise
            if isinstance(exc.__cause__, aiohttp.ClientConnectorError):
                raise httpx2.ConnectError(str(exc), request=request) from exc.__cause__
            raise httpx2.ReadError(str(exc), request=request) from exc.__cause__
        except aiohttp.ClientError as exc:
            raise httpx2.RemoteProtocolError(str(exc), request=request) from exc
        except TimeoutError as exc:  # unmapped by the adapter; ours never shows up in here
            raise httpx2.ConnectTimeout(str(exc), request=request) from exc

    async def aclose(self) -> None:
        await self._inner.aclose()


def timed_out(exc: BaseException) -> bool:
    """Whether a TimeoutError is at the root of `exc`."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, TimeoutError):
            return True
        cause = cause.__cause__
    return False
