"""OpenAILLM: the LLM port over any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, ...).

The SDK keeps the base URL, auth, connect timeout and its retries of connection errors, 429
and 5xx; the stream itself is read raw and parsed with `json`, because building an SDK model
per chunk cost most of a busy bot's CPU (PLATFORM_NOTES, "Per-chunk cost").
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, cast

import anyio
import httpx2
import openai
import structlog
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionStreamOptionsParam

from core.errors import (
    ContextTooLong,
    StreamDropped,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamModelNotFound,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
    UpstreamUnreachable,
)
from core.llm import Delta, Finish, StreamEvent
from core.model import ChatMessage, Usage

log = structlog.get_logger(__name__)

NO_KEY = "not-needed"  # local servers want no key, but the SDK insists on one
_CONTEXT_HINTS = ("context_length_exceeded", "maximum context length", "context size")
_DRAIN_SECONDS = 0.1  # reading the stream's tail lets the connection go back to the pool
# anyio.EndOfStream: the SDK's own shim for TLS failures httpx2 does not map yet.
_READ_ERRORS = (httpx2.RequestError, anyio.EndOfStream)


class OpenAILLM:
    """Streams chat completions; raises only core.errors.UpstreamError subclasses."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        connect_timeout: float,
        first_token_timeout: float,
        idle_timeout: float,
        total_timeout: float,
        max_retries: int = 2,
    ) -> None:
        # One client per process: it owns the connection pool that every stream reuses.
        self._client = openai.AsyncOpenAI(
            api_key=api_key or NO_KEY,
            base_url=base_url,
            timeout=openai.Timeout(total_timeout, connect=connect_timeout),
            max_retries=max_retries,
        )
        self._first_token_timeout = first_token_timeout
        self._idle_timeout = idle_timeout
        self._total_timeout = total_timeout
        # Cleared for the rest of the process once the server rejects the option.
        self._stream_options = True

    async def close(self) -> None:
        await self._client.close()

    async def stream(
        self, messages: Sequence[ChatMessage], *, model: str, max_tokens: int
    ) -> AsyncIterator[StreamEvent]:
        """Deltas as they come, then one Finish once `[DONE]` follows a finish_reason."""
        clock = _Clock(self._first_token_timeout, self._idle_timeout, self._total_timeout)
        params = [
            cast(ChatCompletionMessageParam, {"role": m.role.value, "content": m.content})
            for m in messages
        ]
        reason: str | None = None
        usage: Usage | None = None
        async with contextlib.AsyncExitStack() as stack:
            response = await self._open(stack, params, model, max_tokens, clock)
            lines = cast(AsyncGenerator[str, None], response.iter_lines())
            await stack.enter_async_context(contextlib.aclosing(lines))
            while True:
                line = await _next_line(lines, clock)
                if not line.startswith("data:"):
                    continue  # blank separators, `: ping` comments, `event:`/`id:` fields
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                text, finish, chunk_usage, output = _read_chunk(payload)
                reason = finish or reason
                usage = chunk_usage or usage
                if text:
                    yield Delta(text)
                # After the yield: time the caller spends on a delta is not upstream silence.
                clock.progressed(output)
            if reason is None:
                raise StreamDropped(detail="stream ended without a finish_reason")
            await _drain(lines)
        yield Finish(reason, usage)

    async def _open(
        self,
        stack: contextlib.AsyncExitStack,
        params: list[ChatCompletionMessageParam],
        model: str,
        max_tokens: int,
        clock: _Clock,
    ) -> openai.AsyncAPIResponse[Any]:
        """Send the request (the SDK retries what it retries) and return the open response."""
        try:
            async with asyncio.timeout_at(clock.deadline):
                try:
                    return await stack.enter_async_context(self._request(params, model, max_tokens))
                except openai.BadRequestError as exc:
                    if not (self._stream_options and _about_stream_options(exc)):
                        raise
                    self._stream_options = False
                    log.warning("upstream rejects stream_options; usage will be estimated")
                    return await stack.enter_async_context(self._request(params, model, max_tokens))
        except TimeoutError:
            raise clock.expired() from None
        except openai.APIStatusError as exc:
            # `from None`: the SDK's message may echo part of the API key (a 401 does).
            raise _status_error(exc) from None
        except openai.APITimeoutError as exc:
            raise UpstreamTimeout(detail="SDK timeout before the response") from exc
        except openai.APIConnectionError as exc:
            cause = type(exc.__cause__).__name__
            raise UpstreamUnreachable(detail=f"connection failed: {cause}") from exc
        except openai.OpenAIError as exc:
            raise UpstreamError(detail=f"SDK error: {type(exc).__name__}") from exc

    def _request(
        self, params: list[ChatCompletionMessageParam], model: str, max_tokens: int
    ) -> contextlib.AbstractAsyncContextManager[openai.AsyncAPIResponse[Any]]:
        options: ChatCompletionStreamOptionsParam | openai.Omit = (
            {"include_usage": True} if self._stream_options else openai.omit
        )
        return self._client.chat.completions.with_streaming_response.create(
            messages=params,
            model=model,
            max_tokens=max_tokens,
            stream=True,
            stream_options=options,
        )


class _Clock:
    """When the next chunk is due: first_token_timeout until output starts, then idle_timeout
    after each chunk; never later than total_timeout after the start."""

    def __init__(self, first_token: float, idle: float, total: float) -> None:
        self._loop = asyncio.get_running_loop()
        now = self._loop.time()
        self._idle, self._total, self._first_token = idle, total, first_token
        self._end = now + total
        self.deadline = min(now + first_token, self._end)
        self.streaming = False

    def progressed(self, output: bool) -> None:
        """A chunk arrived; role-only chunks do not end the wait for the first token."""
        self.streaming = self.streaming or output
        if self.streaming:
            self.deadline = min(self._loop.time() + self._idle, self._end)

    def expired(self) -> UpstreamTimeout:
        if self.deadline >= self._end:
            return UpstreamTimeout(detail=f"over total_timeout {self._total}s")
        if self.streaming:
            return UpstreamTimeout(detail=f"no chunk for idle_timeout {self._idle}s")
        return UpstreamTimeout(detail=f"no first token within {self._first_token}s")


async def _next_line(lines: AsyncIterator[str], clock: _Clock) -> str:
    """The next SSE line, within the clock's deadline; an early end is a dropped stream."""
    try:
        async with asyncio.timeout_at(clock.deadline):
            return await anext(lines)
    except StopAsyncIteration:
        raise StreamDropped(detail="stream ended without [DONE]") from None
    except TimeoutError:
        raise clock.expired() from None
    except httpx2.TimeoutException as exc:
        raise UpstreamTimeout(detail=f"read timeout: {type(exc).__name__}") from exc
    except _READ_ERRORS as exc:
        raise StreamDropped(detail=f"connection lost: {type(exc).__name__}") from exc


def _read_chunk(payload: str) -> tuple[str, str | None, Usage | None, bool]:
    """(text, finish_reason, usage, produced output) of one chunk, tolerating what servers
    add or leave out: empty `choices`, no usage, `reasoning_content`, role-only deltas."""
    try:
        chunk = json.loads(payload)
    except ValueError:
        raise StreamDropped(detail="malformed chunk: not JSON") from None
    if not isinstance(chunk, dict):
        raise StreamDropped(detail="malformed chunk: not an object")
    if isinstance(error := chunk.get("error"), dict):  # an error event after the 200
        kind = f"type={error.get('type')} code={error.get('code')}"
        if _mentions_context(error.get("code"), error.get("message")):
            raise ContextTooLong(detail=f"error event {kind}")
        raise StreamDropped(detail=f"error event {kind}")
    usage = _usage(chunk.get("usage"))
    choices = chunk.get("choices")
    if not (isinstance(choices, list) and choices and isinstance(choices[0], dict)):
        return "", None, usage, False
    delta = choices[0].get("delta")
    delta = delta if isinstance(delta, dict) else {}
    text = delta.get("content")
    text = text if isinstance(text, str) else ""
    reason = choices[0].get("finish_reason")
    reason = reason if isinstance(reason, str) and reason else None
    output = bool(text or delta.get("reasoning_content") or delta.get("reasoning") or reason)
    return text, reason, usage, output


def _usage(value: object) -> Usage | None:
    if not isinstance(value, dict):
        return None
    prompt, completion = value.get("prompt_tokens"), value.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return Usage(prompt_tokens=prompt, completion_tokens=completion)
    return None


async def _drain(lines: AsyncIterator[str]) -> None:
    """Read the few bytes after `[DONE]` so the connection can be reused, briefly."""
    with contextlib.suppress(TimeoutError, *_READ_ERRORS):
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for _ in lines:
                pass


def _status_error(exc: openai.APIStatusError) -> UpstreamError:
    """Map an HTTP error answer; the detail names status, type, code and request id only."""
    status = exc.status_code
    detail = f"HTTP {status} type={exc.type} code={exc.code} request_id={exc.request_id}"
    if status in (401, 403):
        return UpstreamAuthError(detail=detail)
    if status == 404:
        return UpstreamModelNotFound(detail=detail)
    if status == 429:
        return UpstreamRateLimited(_retry_after(exc.response.headers), detail=detail)
    if _mentions_context(exc.code, exc.message):  # 400 mostly; some servers answer 5xx
        return ContextTooLong(detail=detail)
    if status >= 500:
        return UpstreamUnavailable(detail=detail)
    return UpstreamBadRequest(detail=detail)


def _about_stream_options(exc: openai.BadRequestError) -> bool:
    return "stream_options" in f"{exc.message} {exc.param}"


def _mentions_context(code: object, message: object) -> bool:
    text = f"{code} {message}".lower()
    return any(hint in text for hint in _CONTEXT_HINTS)


def _retry_after(headers: httpx2.Headers) -> float | None:
    """Seconds from `Retry-After`, given as seconds or as an HTTP date."""
    if (value := headers.get("retry-after")) is None:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    return None
