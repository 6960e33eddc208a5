"""OpenAILLM: the LLM port over any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, ...).

The SDK keeps the base URL, auth, connect timeout and its retries of connection errors and
most 5xx (429 and 503 come back to the engine's line at once, `_Client`); the stream itself
is read raw and parsed with `json`, because building an SDK model per chunk cost most of a
busy bot's CPU (measured with tests/bench/stream_bench.py).

Each chunk and each request are hot paths (measured with
tests/bench/stream_bench.py at 200 concurrent streams):
- the SDK's aiohttp transport: its httpx2 one re-registers the socket with epoll and enters
  an anyio cancel scope on every read (its errors are made to match httpx2's, _HonestErrors);
- the body is read as bytes and split into SSE lines here: the SDK's and httpx2's line
  iterators stacked three more generators and a text decoder on every read;
- one watchdog timer per stream enforces the first-token, idle and total deadlines, instead
  of a timeout context per line (_Watchdog);
- the messages skip the SDK's typed transform, which cost more than all the rest of a request
  with a long history (`_request`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import anyio
import httpx2
import openai
import structlog
from openai.types.chat import ChatCompletionStreamOptionsParam

from core.errors import (
    ContextTooLong,
    StreamDropped,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamModelNotFound,
    UpstreamOverloaded,
    UpstreamQuotaExceeded,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
    UpstreamUnreachable,
)
from core.llm import Delta, Finish, StreamEvent
from core.model import ChatMessage, Usage
from core.retry import retry_after
from models.openai.transport import aiohttp_client

log = structlog.get_logger(__name__)

NO_KEY = "not-needed"  # local servers want no key, but the SDK insists on one
_CONTEXT_HINTS = ("context_length_exceeded", "maximum context length", "context size")
_DRAIN_SECONDS = 0.1  # reading the stream's tail lets the connection go back to the pool
_EXPIRED = "parley: upstream deadline passed"  # the watchdog's cancel message
# anyio.EndOfStream: the SDK's own shim for TLS failures httpx2 does not map yet;
# aiohttp.ClientError: what the SDK's aiohttp adapter leaves unmapped.
_READ_ERRORS = (httpx2.RequestError, anyio.EndOfStream, aiohttp.ClientError)


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
        # No read timeout: the stream's own deadlines (_Clock) are never later than
        # total_timeout after the start, so one of total_timeout per read could never fire
        # first, and it cost a timer per read (aiohttp) or a cancel scope's (anyio).
        self._client = _Client(
            api_key=api_key or NO_KEY,
            base_url=base_url,
            timeout=openai.Timeout(total_timeout, connect=connect_timeout, read=None),
            max_retries=max_retries,
            http_client=aiohttp_client(),
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
        params = [{"role": m.role.value, "content": m.content} for m in messages]
        reason: str | None = None
        usage: Usage | None = None
        async with contextlib.AsyncExitStack() as stack:
            response = await self._open(stack, params, model, max_tokens, clock)
            raw = response.http_response
            encoding = raw.encoding or "utf-8"  # as httpx2 decoded text: charset, else UTF-8
            identity = raw.headers.get("content-encoding", "identity").lower() == "identity"
            # aiter_raw skips the content decoder's layer; a compressed body needs it.
            chunks = raw.aiter_raw() if identity else raw.aiter_bytes()
            await stack.enter_async_context(contextlib.aclosing(chunks))
            watchdog = _Watchdog(clock)
            stack.callback(watchdog.stop)
            pending = b""  # an incomplete line, carried over to the next read
            ended = done = False
            while not done:
                watchdog.reading()
                try:
                    data = await anext(chunks)
                except StopAsyncIteration:
                    ended, data = True, b"\n"  # the last line may lack its newline
                except asyncio.CancelledError:
                    if watchdog.expired():
                        raise clock.expired() from None
                    raise  # cancelled from outside: not ours to turn into an error
                except httpx2.ConnectTimeout as exc:  # aiohttp's adapter: a connection lost
                    raise StreamDropped(detail=f"connection lost: {_cause(exc)}") from exc
                except httpx2.TimeoutException as exc:
                    raise UpstreamTimeout(detail=f"read timeout: {type(exc).__name__}") from exc
                except _READ_ERRORS as exc:
                    raise StreamDropped(detail=f"connection lost: {type(exc).__name__}") from exc
                finally:
                    watchdog.awaiting = False
                if watchdog.expired():  # it cancelled the read, but something below swallowed it
                    raise clock.expired()
                if b"\r" in data:  # CR LF or a lone CR: an extra empty line is harmless
                    data = data.replace(b"\r", b"\n")
                lines = (pending + data).split(b"\n") if pending else data.split(b"\n")
                pending = lines.pop()
                for line in lines:
                    if not line.startswith(b"data:"):
                        continue  # blank separators, `: ping` comments, `event:`/`id:` fields
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        done = True
                        break
                    text, finish, chunk_usage, output = _read_chunk(payload, encoding)
                    reason = finish or reason
                    usage = chunk_usage or usage
                    if text:
                        yield Delta(text)
                    # After the yield: time the caller spends on a delta is not upstream silence.
                    clock.progressed(output)
                if ended and not done:
                    raise StreamDropped(detail="stream ended without [DONE]")
            watchdog.stop()
            if reason is None:
                raise StreamDropped(detail="stream ended without a finish_reason")
            await _drain(chunks)
        yield Finish(reason, usage)

    async def _open(
        self,
        stack: contextlib.AsyncExitStack,
        params: list[dict[str, str]],
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
        self, params: list[dict[str, str]], model: str, max_tokens: int
    ) -> contextlib.AbstractAsyncContextManager[openai.AsyncAPIResponse[Any]]:
        options: ChatCompletionStreamOptionsParam | openai.Omit = (
            {"include_usage": True} if self._stream_options else openai.omit
        )
        return self._client.chat.completions.with_streaming_response.create(
            # The messages go in `extra_body`, which takes precedence (the SDK documents it), so
            # the body is the same: the SDK's typed transform walks every field of every message,
            # about 0.17 ms of CPU a message (7 ms for a 20-turn history), to change nothing in
            # plain-text messages.
            messages=[],
            model=model,
            max_tokens=max_tokens,
            stream=True,
            stream_options=options,
            extra_body={"messages": params},
        )


class _Client(openai.AsyncOpenAI):
    """The SDK's client, except that it hands 429 and 503 back at once instead of retrying
    them: the engine then waits the Retry-After out in its line, where the person sees it,
    and lowers its stream cap, which the SDK's silent retries would hide from it. The SDK
    still retries connection errors, 408, 409 and the other 5xx."""

    def _should_retry(self, response: httpx2.Response) -> bool:
        if response.status_code in (429, 503):
            return False
        return super()._should_retry(response)

    @property
    def user_agent(self) -> str:
        return f"AsyncOpenAI/Python {self._version} (parley)"  # not this subclass's name

    def platform_headers(self) -> dict[str, str]:
        """None of the SDK's seven X-Stainless-* telemetry headers (OS, arch, runtime, ...):
        httpx2 prepares a request's headers in time quadratic in their number, which made
        header handling a seventh of the CPU of a burst of 200 requests (py-spy)."""
        return {}


class _Clock:
    """When the next chunk is due: first_token_timeout until output starts, then idle_timeout
    after each chunk; never later than total_timeout after the start."""

    def __init__(self, first_token: float, idle: float, total: float) -> None:
        self.loop = asyncio.get_running_loop()
        now = self.loop.time()
        self._idle, self._total, self._first_token = idle, total, first_token
        self._end = now + total
        self.deadline = min(now + first_token, self._end)
        self.streaming = False

    def progressed(self, output: bool) -> None:
        """A chunk arrived; role-only chunks do not end the wait for the first token."""
        self.streaming = self.streaming or output
        if self.streaming:
            self.deadline = min(self.loop.time() + self._idle, self._end)

    def expired(self) -> UpstreamTimeout:
        if self.deadline >= self._end:
            return UpstreamTimeout(detail=f"over total_timeout {self._total}s")
        if self.streaming:
            return UpstreamTimeout(detail=f"no chunk for idle_timeout {self._idle}s")
        return UpstreamTimeout(detail=f"no first token within {self._first_token}s")


class _Watchdog:
    """The clock's deadline, enforced by one timer per stream rather than a timeout context per
    read (a timer, a heap entry and a task lookup per line were a tenth of a busy loop).

    The reader moves `clock.deadline` as chunks come; the timer, when it fires, re-arms at the
    new deadline if there is one. Past the deadline it cancels the reading task, but only while
    the stream awaits a read (`awaiting`): between lines the generator has yielded to its
    consumer, whose time is not upstream silence. Then the timer stops and the next read
    re-arms it. The read site asks `expired()` whether a CancelledError was this timer's alone.
    """

    __slots__ = ("_base", "_clock", "_handle", "_task", "_when", "awaiting", "fired")

    def __init__(self, clock: _Clock) -> None:
        self._clock = clock
        self._handle: asyncio.TimerHandle | None = None
        self._when = 0.0  # when the timer fires, if set
        self._task: asyncio.Task[Any] | None = None
        self._base = 0  # the task's cancelling() count when the read began
        self.awaiting = False
        self.fired = False

    def reading(self) -> None:
        """Called just before awaiting a read, in the task that awaits it."""
        self._task = task = asyncio.current_task()
        self._base = task.cancelling() if task is not None else 0
        # The deadline moves later as chunks come, except once: the first token switches from
        # first_token_timeout to idle_timeout, which may be the sooner of the two.
        if self._handle is None or self._clock.deadline < self._when:
            self._arm(self._clock.deadline)
        self.awaiting = True

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._when = when
        self._handle = self._clock.loop.call_at(when, self._check)

    def _check(self) -> None:
        self._handle = None
        deadline = self._clock.deadline
        if self._clock.loop.time() < deadline:  # chunks came since the timer was set
            self._arm(deadline)
        elif self.awaiting and self._task is not None:
            self.fired = True
            self._task.cancel(_EXPIRED)
        # Else the consumer holds control: the next read re-arms, from the deadline it finds.

    def expired(self) -> bool:
        """True when the watchdog cancelled the read and nobody else did; its cancellation is
        withdrawn either way. False for a cancellation from outside, or none."""
        if not self.fired:
            return False
        self.fired = False
        assert self._task is not None
        return self._task.uncancel() <= self._base

    def stop(self) -> None:
        """On the way out: no timer left behind, no cancellation of ours left counted."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.expired()


def _cause(exc: BaseException) -> str:
    return type(exc.__cause__ or exc).__name__


def _read_chunk(payload: bytes, encoding: str) -> tuple[str, str | None, Usage | None, bool]:
    """(text, finish_reason, usage, produced output) of one chunk, tolerating what servers
    add or leave out: empty `choices`, no usage, `reasoning_content`, role-only deltas."""
    try:
        try:
            decoded = payload.decode(encoding)
        except UnicodeDecodeError:  # replaced, as the text decoding of httpx2 did
            decoded = payload.decode(encoding, "replace")
        chunk = json.loads(decoded)
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


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read the few bytes after `[DONE]` so the connection can be reused, briefly."""
    with contextlib.suppress(TimeoutError, *_READ_ERRORS):
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for _ in chunks:
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
        if exc.code == "insufficient_quota":
            return UpstreamQuotaExceeded(detail=detail)
        return UpstreamRateLimited(_retry_after(exc.response.headers), detail=detail)
    if _mentions_context(exc.code, exc.message):  # 400 mostly; some servers answer 5xx
        return ContextTooLong(detail=detail)
    if status == 503:
        return UpstreamOverloaded(_retry_after(exc.response.headers), detail=detail)
    if status >= 500:
        return UpstreamUnavailable(detail=detail)
    return UpstreamBadRequest(detail=detail)


def _about_stream_options(exc: openai.BadRequestError) -> bool:
    return "stream_options" in f"{exc.message} {exc.param}"


def _mentions_context(code: object, message: object) -> bool:
    text = f"{code} {message}".lower()
    return any(hint in text for hint in _CONTEXT_HINTS)


def _retry_after(headers: httpx2.Headers) -> float | None:
    """Seconds from `Retry-After-Ms` or `Retry-After` (seconds or an HTTP date)."""
    return retry_after(headers)
