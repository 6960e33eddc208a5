"""Counting every platform API call (by method and HTTP status) for /metrics.

An aiohttp trace on the session a platform SDK uses: no SDK patching, nothing per call in
our own code paths. Paths are normalised so ids and interaction tokens never become labels.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import SimpleNamespace

import aiohttp
from yarl import URL

from core.metrics import PLATFORM_CALLS

_ID = re.compile(r"^\d+$")
_VERSION = re.compile(r"^v\d+$")


def slack_method(url: URL) -> str:
    """`https://slack.com/api/chat.update` -> `chat.update`."""
    return url.path.rstrip("/").rsplit("/", 1)[-1] or "unknown"


def discord_route(url: URL) -> str:
    """`/api/v10/channels/123/messages/456` -> `/channels/{id}/messages/{id}`; webhook and
    interaction tokens become `{token}`."""
    parts = []
    for part in url.path.split("/"):
        if not part or part == "api" or _VERSION.match(part):
            continue
        if _ID.match(part):
            parts.append("{id}")
        elif len(part) > 24:
            parts.append("{token}")
        else:
            parts.append(part)
    return "/" + "/".join(parts)


def count_calls(platform: str, name: Callable[[URL], str]) -> aiohttp.TraceConfig:
    """A trace that counts each finished request as parley_platform_calls_total."""
    trace = aiohttp.TraceConfig()
    add_counter(trace, platform, name)
    return trace


def add_counter(trace: aiohttp.TraceConfig, platform: str, name: Callable[[URL], str]) -> None:
    """Count requests on an existing trace (discord.py takes only one)."""

    async def on_request_end(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        method = name(params.url)
        if platform == "discord":
            method = f"{params.method} {method}"
        PLATFORM_CALLS.labels(platform, method, str(params.response.status)).inc()

    async def on_request_exception(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestExceptionParams,
    ) -> None:
        method = name(params.url)
        if platform == "discord":
            method = f"{params.method} {method}"
        PLATFORM_CALLS.labels(platform, method, "error").inc()

    trace.on_request_end.append(on_request_end)
    trace.on_request_exception.append(on_request_exception)
