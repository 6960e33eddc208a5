"""OpenAILLM against the fake upstream, through the real openai SDK over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
import traceback
from collections.abc import AsyncIterator, Callable
from typing import Any

import openai
import pytest

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
from core.model import ChatMessage, Role, Usage
from models.openai.llm import OpenAILLM
from tests.fakes.upstream import DEFAULT_TEXT, FakeUpstream, Script

API_KEY = "sk-test-DO-NOT-LEAK-1234"
MESSAGES = [
    ChatMessage(Role.SYSTEM, "You are terse."),
    ChatMessage(Role.USER, "Say hello."),
    ChatMessage(Role.ASSISTANT, "Hello."),
    ChatMessage(Role.USER, "Again, please."),
]
LONG_TEXT = "Streaming answers arrive in small pieces: ünïcødé ✓, emoji 🎉, and newlines\nok."

MakeLLM = Callable[..., OpenAILLM]


@pytest.fixture
async def make_llm(upstream: FakeUpstream) -> AsyncIterator[MakeLLM]:
    """Build OpenAILLMs with small timeouts and no SDK retries; closed after the test."""
    made: list[OpenAILLM] = []

    def make(**overrides: Any) -> OpenAILLM:
        kwargs: dict[str, Any] = {
            "api_key": API_KEY,
            "base_url": upstream.base_url,
            "connect_timeout": 1.0,
            "first_token_timeout": 2.0,
            "idle_timeout": 1.0,
            "total_timeout": 10.0,
            "max_retries": 0,
        }
        llm = OpenAILLM(**(kwargs | overrides))
        made.append(llm)
        return llm

    yield make
    for llm in made:
        await llm.close()


class Taken:
    """How many deltas a consumer has taken, for a test to wait on."""

    def __init__(self) -> None:
        self.deltas = 0
        self._changed = asyncio.Condition()

    async def took(self) -> None:
        self.deltas += 1
        async with self._changed:
            self._changed.notify_all()

    async def wait(self, deltas: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.deltas >= deltas)


async def run(
    llm: OpenAILLM, *, max_tokens: int = 256, taken: Taken | None = None
) -> tuple[str, list[StreamEvent], UpstreamError | None]:
    """Consume a stream: (text yielded, events, the error that ended it if any); `taken`
    counts the deltas as the consumer takes them."""
    events: list[StreamEvent] = []
    try:
        async for event in llm.stream(MESSAGES, model="fake-model", max_tokens=max_tokens):
            events.append(event)
            if taken is not None and isinstance(event, Delta):
                await taken.took()
    except UpstreamError as exc:
        error: UpstreamError | None = exc
    else:
        error = None
    text = "".join(e.text for e in events if isinstance(e, Delta))
    return text, events, error


def finish_of(events: list[StreamEvent]) -> Finish:
    """The stream's one Finish, which must be its last event."""
    finishes = [e for e in events if isinstance(e, Finish)]
    assert len(finishes) == 1
    assert events[-1] is finishes[0]
    return finishes[0]


# -- happy paths --------------------------------------------------------------------------------


async def test_streams_the_script_text_exactly(upstream: FakeUpstream, make_llm: MakeLLM) -> None:
    upstream.script(Script(text=LONG_TEXT, chunk_chars=3))
    text, events, error = await run(make_llm())
    assert error is None
    assert text == LONG_TEXT
    assert all(e.text for e in events if isinstance(e, Delta))  # no empty deltas
    assert finish_of(events).reason == "stop"


async def test_default_reply_and_length_finish(upstream: FakeUpstream, make_llm: MakeLLM) -> None:
    llm = make_llm()
    upstream.script(Script(chunks=["cut ", "short"], finish_reason="length"))
    text, events, _ = await run(llm)
    assert (text, finish_of(events).reason) == ("cut short", "length")
    text, _, _ = await run(llm)  # empty queue: the default reply
    assert text == DEFAULT_TEXT


async def test_usage_is_parsed_when_sent(upstream: FakeUpstream, make_llm: MakeLLM) -> None:
    upstream.script(Script(prompt_tokens=42, completion_tokens=7))
    _, events, _ = await run(make_llm())
    assert finish_of(events).usage == Usage(prompt_tokens=42, completion_tokens=7)


async def test_usage_is_none_when_not_sent(upstream: FakeUpstream, make_llm: MakeLLM) -> None:
    upstream.script(Script(usage=False))
    text, events, _ = await run(make_llm())
    assert text == DEFAULT_TEXT
    assert finish_of(events).usage is None


async def test_pings_and_extra_fields_are_tolerated(
    upstream: FakeUpstream, make_llm: MakeLLM
) -> None:
    upstream.script(Script(text=LONG_TEXT, ping=True, extra_fields=True))
    text, events, error = await run(make_llm())
    assert error is None
    assert text == LONG_TEXT  # reasoning_content is not part of the reply
    assert finish_of(events).usage is not None


async def test_request_carries_messages_model_max_tokens_and_stream_options(
    upstream: FakeUpstream, make_llm: MakeLLM
) -> None:
    await run(make_llm(), max_tokens=123)
    (request,) = await upstream.wait_requests(1)
    body = request["body"]
    assert body["messages"] == [{"role": m.role.value, "content": m.content} for m in MESSAGES]
    assert body["model"] == "fake-model"
    assert body["max_tokens"] == 123
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert request["headers"]["authorization"] == f"Bearer {API_KEY}"


async def test_without_a_key_a_placeholder_is_sent(
    upstream: FakeUpstream, make_llm: MakeLLM
) -> None:
    text, _, _ = await run(make_llm(api_key=None))
    assert text == DEFAULT_TEXT
    assert upstream.requests[0]["headers"]["authorization"] == "Bearer not-needed"


async def test_connections_are_reused(upstream: FakeUpstream, make_llm: MakeLLM) -> None:
    llm = make_llm()
    for _ in range(3):
        await run(llm)
    assert len({r["peer"] for r in upstream.requests}) == 1


# -- error answers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, UpstreamAuthError),
        (403, UpstreamAuthError),
        (404, UpstreamModelNotFound),
        (400, UpstreamBadRequest),
        (422, UpstreamBadRequest),
        (500, UpstreamUnavailable),
        (503, UpstreamOverloaded),
    ],
)
async def test_status_maps_to_its_error(
    upstream: FakeUpstream, make_llm: MakeLLM, status: int, expected: type[UpstreamError]
) -> None:
    upstream.script(Script(status=status))
    _, events, error = await run(make_llm())
    assert type(error) is expected
    assert f"HTTP {status}" in error.detail
    assert events == []


async def test_rate_limit_carries_retry_after(upstream: FakeUpstream, make_llm: MakeLLM) -> None:
    upstream.script(Script(status=429, retry_after=7), Script(status=429))
    llm = make_llm()
    _, _, error = await run(llm)
    assert isinstance(error, UpstreamRateLimited)
    assert error.retry_after == 7.0
    assert "7 seconds" in error.user_message
    _, _, error = await run(llm)
    assert isinstance(error, UpstreamRateLimited)
    assert error.retry_after is None


@pytest.mark.parametrize(
    "script",
    [
        Script(status=400, code="context_length_exceeded"),
        Script(status=400, message="This model's maximum context length is 4096 tokens."),
    ],
)
async def test_context_too_long(upstream: FakeUpstream, make_llm: MakeLLM, script: Script) -> None:
    upstream.script(script)
    _, _, error = await run(make_llm())
    assert isinstance(error, ContextTooLong)


async def test_api_key_never_appears_on_the_error(
    upstream: FakeUpstream, make_llm: MakeLLM
) -> None:
    upstream.script(Script(status=401, message=f"Incorrect API key provided: {API_KEY}."))
    _, _, error = await run(make_llm())
    assert isinstance(error, UpstreamAuthError)
    shown = "".join(traceback.format_exception(error)) + repr(error) + error.user_message
    assert API_KEY not in shown
    assert "HTTP 401" in error.detail


# -- timeouts and broken streams ----------------------------------------------------------------


async def test_hang_times_out_after_first_token_timeout(
    upstream: FakeUpstream, make_llm: MakeLLM
) -> None:
    upstream.script(Script(fault="hang"))
    started = time.monotonic()
    _, events, error = await run(make_llm(first_token_timeout=0.3, total_timeout=5.0))
    elapsed = time.monotonic() - started
    assert isinstance(error, UpstreamTimeout)
    assert "first token" in error.detail
    assert events == []
    assert elapsed >= 0.3  # not before first_token_timeout (nor at total_timeout: see detail)
    await upstream.wait_idle()  # the client hung up, so the stalled handler ended


async def test_role_chunk_alone_is_not_a_first_token(
    upstream: FakeUpstream, make_llm: MakeLLM
) -> None:
    upstream.script(Script(first_delay=5.0))
    _, events, error = await run(make_llm(first_token_timeout=0.3, idle_timeout=5.0))
    assert isinstance(error, UpstreamTimeout)
    assert "first token" in error.detail
    assert events == []


async def test_slow_first_token_is_not_an_idle_timeout(
    upstream: FakeUpstream, make_llm: MakeLLM
) -> None:
    upstream.script(Script(first_delay=0.3))
    text, _, error = await run(make_llm(first_token_timeout=2.0, idle_timeout=0.1))
    assert error is None
    assert text == DEFAULT_TEXT


async def test_hang_mid_stream_times_out_after_idle_timeout(
    upstream: FakeUpstream, make_llm: MakeLLM
) -> None:
    upstream.script(Script(chunks=["one ", "two ", "three"], fault="hang_mid", fault_after=2))
    text, _, error = await run(make_llm(first_token_timeout=5.0, idle_timeout=0.3))
    assert isinstance(error, UpstreamTimeout)
    assert error.detail == "no chunk for idle_timeout 0.3s"  # not the 5 s or total deadline
    assert text == "one two "  # what was yielded stays yielded
    await upstream.wait_idle()


async def test_total_timeout_bounds_a_slow_but_steady_stream(
    upstream: FakeUpstream, make_llm: MakeLLM
) -> None:
    upstream.script(Script(chunks=["tick "] * 50, interval=0.05))
    text, _, error = await run(make_llm(idle_timeout=1.0, total_timeout=0.5))
    assert isinstance(error, UpstreamTimeout)
    assert "total" in error.detail
    assert text.startswith("tick ")


async def test_slow_consumer_is_not_upstream_silence(
    upstream: FakeUpstream, make_llm: MakeLLM
) -> None:
    # Each chunk comes 0.35 s after the last; the caller spends 0.3 s on each, so upstream is
    # silent for only ~0.05 s of the time we wait, well within idle_timeout.
    upstream.script(Script(chunks=["a", "b", "c"], interval=0.35))
    seen = []
    async for event in make_llm(idle_timeout=0.2).stream(MESSAGES, model="m", max_tokens=9):
        seen.append(event)
        if isinstance(event, Delta):
            # The scenario, not a synchronisation: a caller that holds each delta for longer
            # than idle_timeout (as a slow platform call would).
            await asyncio.sleep(0.3)
    assert [e.text for e in seen if isinstance(e, Delta)] == ["a", "b", "c"]
    assert isinstance(seen[-1], Finish)


@pytest.mark.parametrize(
    ("fault", "kept"),
    [
        ("drop_mid", "Hello fr"),  # two chunks of four characters, then the cut
        ("malformed", "Hello fr"),
        ("no_finish", DEFAULT_TEXT),
        ("empty_200", ""),
    ],
)
async def test_broken_streams_raise_stream_dropped(
    upstream: FakeUpstream, make_llm: MakeLLM, fault: Any, kept: str
) -> None:
    upstream.script(Script(fault=fault))
    text, events, error = await run(make_llm())
    assert isinstance(error, StreamDropped), error
    assert text == kept
    assert not any(isinstance(e, Finish) for e in events)


async def test_connection_refused_is_unreachable(make_llm: MakeLLM) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago, now closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _, _, error = await run(make_llm(base_url=f"http://127.0.0.1:{port}/v1"))
    assert isinstance(error, UpstreamUnreachable)
    assert error.detail == "connection failed: ConnectError"


async def test_breaking_out_early_closes_the_connection(
    upstream: FakeUpstream, make_llm: MakeLLM
) -> None:
    upstream.script(Script(fault="hang_mid"))
    stream = make_llm().stream(MESSAGES, model="m", max_tokens=9)
    assert isinstance(await anext(stream), Delta)
    await stream.aclose()  # type: ignore[attr-defined]
    await upstream.wait_idle()  # the server saw the client go away


async def test_cancelling_the_consumer_closes_the_connection(
    upstream: FakeUpstream, make_llm: MakeLLM
) -> None:
    upstream.script(Script(fault="hang"))
    task = asyncio.create_task(run(make_llm(first_token_timeout=30.0)))
    await upstream.wait_requests(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await upstream.wait_idle()


# -- fallbacks and retries ----------------------------------------------------------------------


async def test_stream_options_rejection_falls_back_once_and_is_remembered(
    make_llm: MakeLLM,
) -> None:
    async with FakeUpstream(reject_stream_options=True) as strict:
        llm = make_llm(base_url=strict.base_url)
        text, events, error = await run(llm)
        assert error is None
        assert text == DEFAULT_TEXT
        assert finish_of(events).usage is None
        text, _, _ = await run(llm)
        assert text == DEFAULT_TEXT
        sent = ["stream_options" in r["body"] for r in strict.requests]
        assert sent == [True, False, False]


@pytest.mark.parametrize("status", [429, 503])
async def test_come_back_later_reaches_the_engine_at_once(
    upstream: FakeUpstream, make_llm: MakeLLM, status: int
) -> None:
    # The engine waits these out in its line (visible, and its cap adapts): the SDK must not
    # sleep on them silently first.
    upstream.script(Script(status=status, retry_after="0.5"))
    _, _, error = await run(make_llm(max_retries=2))
    assert error is not None and error.overloaded and error.retry_after == 0.5
    assert len(upstream.requests) == 1


async def test_a_spent_quota_is_not_a_rate_limit(upstream: FakeUpstream, make_llm: MakeLLM) -> None:
    upstream.script(Script(status=429, code="insufficient_quota"))
    _, _, error = await run(make_llm())
    assert isinstance(error, UpstreamQuotaExceeded) and not error.overloaded


async def test_sdk_retries_a_server_error(upstream: FakeUpstream, make_llm: MakeLLM) -> None:
    # Retry-After keeps the SDK's backoff short; the SDK honours it on any retryable answer.
    upstream.script(Script(status=500, retry_after=0.01))
    text, _, error = await run(make_llm(max_retries=1))
    assert error is None
    assert text == DEFAULT_TEXT
    assert len(upstream.requests) == 2


# -- the fake itself ----------------------------------------------------------------------------


async def test_fake_matches_the_sdk_models(upstream: FakeUpstream) -> None:
    """The SDK's own parsers accept the fake's chunks, completions and model list."""
    upstream.script(Script(extra_fields=True), Script(text="plain"))
    async with openai.AsyncOpenAI(api_key="k", base_url=upstream.base_url) as client:
        stream = await client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == DEFAULT_TEXT
        assert chunks[-1].usage is not None
        completion = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
        assert completion.choices[0].message.content == "plain"
        assert [m.id async for m in client.models.list()] == ["fake-model"]
    first = upstream.requests[0]
    assert first["first_content_at"] is not None
    assert first["last_content_at"] is not None
    assert first["received_at"] <= first["first_content_at"] <= first["last_content_at"]


async def test_stop_cancels_stalled_handlers() -> None:
    fake = FakeUpstream()
    await fake.start()
    fake.script(Script(fault="hang"))
    async with openai.AsyncOpenAI(api_key="k", base_url=fake.base_url, max_retries=0) as client:
        call = asyncio.create_task(
            client.chat.completions.create(model="m", messages=[], stream=True)
        )
        await fake.wait_requests(1)
        async with asyncio.timeout(3):
            await fake.stop()
        await fake.wait_idle(timeout=0.5)
        with pytest.raises(openai.APIConnectionError):
            await call


# -- the watchdog: one timer per stream enforces the deadlines ----------------------------------


async def test_idle_timeout_fires_on_time_after_a_steady_stream(
    upstream: FakeUpstream, make_llm: MakeLLM
) -> None:
    # 20 chunks 0.03 s apart take longer than idle_timeout: a deadline counted from the first
    # chunk (or from the start) would cut the stream before its last chunk.
    upstream.script(Script(chunks=["tick "] * 21, interval=0.03, fault="hang_mid", fault_after=20))
    llm = make_llm(first_token_timeout=5.0, idle_timeout=0.3)
    text, _, error = await run(llm)
    failed = time.monotonic()
    assert isinstance(error, UpstreamTimeout)
    assert error.detail == "no chunk for idle_timeout 0.3s"
    assert text == "tick " * 20  # every chunk that came in time was shown
    last = upstream.requests[0]["last_content_at"]
    assert last is not None
    assert failed - last >= 0.3  # not before idle_timeout after the last chunk
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0  # its cancellation was withdrawn
    text, _, error = await run(llm)  # and nothing of it hits the caller's next awaits
    assert (text, error) == (DEFAULT_TEXT, None)


async def test_first_token_and_total_timeouts_keep_their_messages(
    upstream: FakeUpstream, make_llm: MakeLLM
) -> None:
    upstream.script(Script(fault="hang"), Script(first_delay=5.0))
    _, _, error = await run(make_llm(first_token_timeout=0.2))
    assert isinstance(error, UpstreamTimeout)
    assert error.detail == "no first token within 0.2s"  # the response never opened
    started = time.monotonic()
    _, _, error = await run(make_llm(first_token_timeout=5.0, total_timeout=0.3))
    assert isinstance(error, UpstreamTimeout)
    assert error.detail == "over total_timeout 0.3s"  # opened, then only a role chunk
    assert time.monotonic() - started >= 0.3  # not before total_timeout


async def test_a_consumer_slower_than_idle_timeout_on_a_fast_stream(
    upstream: FakeUpstream, make_llm: MakeLLM
) -> None:
    # Everything arrives at once; the caller holds each delta longer than idle_timeout, so the
    # timer fires while the generator is not reading: that must not count as silence.
    upstream.script(Script(chunks=["a", "b", "c"]))
    seen = []
    async for event in make_llm(idle_timeout=0.15).stream(MESSAGES, model="m", max_tokens=9):
        seen.append(event)
        if isinstance(event, Delta):
            await asyncio.sleep(0.35)  # the scenario: a caller slower than idle_timeout
    assert [e.text for e in seen if isinstance(e, Delta)] == ["a", "b", "c"]
    assert isinstance(seen[-1], Finish)


async def test_cancelling_the_consumer_mid_stream_is_a_cancellation(
    upstream: FakeUpstream, make_llm: MakeLLM
) -> None:
    upstream.script(Script(fault="hang_mid"))
    taken = Taken()
    task = asyncio.create_task(run(make_llm(idle_timeout=30.0), taken=taken))
    await taken.wait(2)  # two chunks in; the consumer is back reading, waiting for the third
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await upstream.wait_idle()


async def test_a_cancellation_that_meets_the_deadline_is_still_a_cancellation(
    upstream: FakeUpstream, make_llm: MakeLLM
) -> None:
    upstream.script(Script(fault="hang_mid"))
    task = asyncio.create_task(run(make_llm(first_token_timeout=5.0, idle_timeout=0.2)))
    # The watchdog cancels the stalled read at the idle deadline; in the very next loop turn,
    # before the reader wakes, someone else cancels the same task. Theirs must win.
    async with asyncio.timeout(3):
        while task.cancelling() == 0:  # noqa: ASYNC110 (polled every loop turn on purpose)
            await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_outer_timeout_of_the_caller_still_works(
    upstream: FakeUpstream, make_llm: MakeLLM
) -> None:
    upstream.script(Script(fault="hang_mid"), Script(fault="hang_mid"))
    with pytest.raises(TimeoutError):  # the caller's own deadline, sooner than ours
        async with asyncio.timeout(0.4):
            await run(make_llm(idle_timeout=5.0))
    async with asyncio.timeout(5):  # ours, sooner than the caller's
        _, _, error = await run(make_llm(idle_timeout=0.2))
    assert isinstance(error, UpstreamTimeout)


async def test_a_stream_consumed_to_the_end_leaves_no_timer_behind(
    upstream: FakeUpstream, make_llm: MakeLLM
) -> None:
    llm = make_llm(idle_timeout=0.1, first_token_timeout=0.1)
    upstream.script(
        Script(text=LONG_TEXT, chunk_chars=3),
        # The caller's next stream, steady (a chunk every 0.03 s) and in all far longer than
        # every deadline of the first: a timer the first left behind would fire meanwhile, into
        # this task, while it awaits a read.
        Script(chunks=["tick "] * 12, interval=0.03),
    )
    text, events, error = await run(llm)
    assert (text, error, finish_of(events).reason) == (LONG_TEXT, None, "stop")
    text, events, error = await run(llm)
    assert (text, error, finish_of(events).reason) == ("tick " * 12, None, "stop")
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0


# -- the SSE bytes, exactly as servers split them -----------------------------------------------


def sse(content: str | None = None, finish: str | None = None, *, raw: bytes = b"") -> bytes:
    """One `data:` line of a chat.completion.chunk (no line ending)."""
    delta = {} if content is None else {"content": content}
    chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + (raw or json.dumps(chunk, ensure_ascii=False).encode())


@contextlib.asynccontextmanager
async def raw_upstream(
    parts: list[bytes], *, head: bytes | None = None, cut: bool = False, gap: float = 0.02
) -> AsyncIterator[str]:
    """A server that answers every request with `parts` as separate HTTP chunks, `gap` apart
    (so each arrives in its own read), then ends the body; `cut` drops the connection instead;
    `head` replaces the whole answer with those bytes, then closes."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            headers = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: *(\d+)", headers)
            await reader.readexactly(int(length.group(1)) if length else 0)
            if head is not None:
                writer.write(head)
                return
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            for part in parts:
                writer.write(b"%x\r\n%s\r\n" % (len(part), part))
                await writer.drain()
                # The scenario, not a synchronisation: a server that sends its bytes in bursts
                # apart in time. Should two parts still land in one read, the same text and
                # events are expected; the test is only less searching.
                await asyncio.sleep(gap)
            if not cut:
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                await reader.read()  # keep-alive: wait for the client to hang up
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1):
                await server.wait_closed()


async def test_lines_split_anywhere_in_any_line_ending(make_llm: MakeLLM) -> None:
    one = sse("caf\u00e9 \U0001f389 ")
    cut = one.index("\u00e9".encode()) + 1  # inside the two bytes of é
    parts = [
        sse(raw=b'{"choices":[{"index":0,"delta":{"role":"assistant"}}]}') + b"\r\n\r\n",
        one[:cut],
        one[cut:] + b"\r\n\r\n: ping\r\n\r\nevent: chunk\nid: 7\n",
        b"data:" + sse("no space")[6:] + b"\n\n" + sse("lone CR") + b"\r\r",
        sse(finish="stop")[:9],
        sse(finish="stop")[9:] + b"\n\ndata: [DONE]",  # no newline at the very end
    ]
    async with raw_upstream(parts) as base_url:
        text, events, error = await run(make_llm(base_url=base_url))
    assert error is None
    assert [e.text for e in events if isinstance(e, Delta)] == [
        "caf\u00e9 \U0001f389 ",
        "no space",
        "lone CR",
    ]
    assert text == "caf\u00e9 \U0001f389 no spacelone CR"
    assert finish_of(events).reason == "stop"


async def test_invalid_utf8_is_replaced_as_before(make_llm: MakeLLM) -> None:
    parts = [sse(raw=b'{"choices":[{"delta":{"content":"bad \xff byte"}}]}') + b"\n\n"]
    parts += [sse(finish="stop") + b"\n\ndata: [DONE]\n\n"]
    async with raw_upstream(parts) as base_url:
        text, _, error = await run(make_llm(base_url=base_url))
    assert error is None
    assert text == "bad \ufffd byte"


async def test_everything_in_one_read(make_llm: MakeLLM) -> None:
    body = b"".join(sse(t) + b"\n\n" for t in "abc") + sse(finish="stop") + b"\n\n"
    async with raw_upstream([body + b"data: [DONE]\n\n" + sse("after done") + b"\n\n"]) as url:
        _, events, error = await run(make_llm(base_url=url))
    assert error is None
    assert [e.text for e in events if isinstance(e, Delta)] == ["a", "b", "c"]  # [DONE] ends it


# -- broken connections, however they break ----------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "cut", "head", "expected", "says"),
    [
        ([sse("one") + b"\n\n"], True, None, StreamDropped, "connection lost"),
        ([sse("one") + b"\n\n"], False, None, StreamDropped, "without [DONE]"),
        ([], False, b"", UpstreamUnreachable, "connection failed"),  # closed, no answer
        ([], False, b"HTTP/1.1 2OO OK\r\n\r\n", UpstreamUnreachable, "connection failed"),
    ],
    ids=["cut-mid-body", "ended-mid-stream", "closed-before-answer", "garbage-answer"],
)
async def test_broken_connections_map_alike(
    make_llm: MakeLLM,
    parts: list[bytes],
    cut: bool,
    head: bytes | None,
    expected: type[UpstreamError],
    says: str,
) -> None:
    async with raw_upstream(parts, cut=cut, head=head) as base_url:
        _, _, error = await run(make_llm(base_url=base_url))
    assert type(error) is expected, error
    assert says in error.detail


async def test_one_client_through_every_kind_of_answer(
    upstream: FakeUpstream, make_llm: MakeLLM
) -> None:
    llm = make_llm()
    long = Script(text=LONG_TEXT, chunk_chars=3, ping=True, extra_fields=True)
    upstream.script(
        long,
        Script(status=429, retry_after=3),
        Script(fault="drop_mid"),
        Script(fault="hang_mid"),
    )
    text, events, error = await run(llm)
    assert (text, error, finish_of(events).usage) == (
        LONG_TEXT,
        None,
        Usage(10, len(long.content_chunks())),
    )
    _, _, error = await run(llm)
    assert isinstance(error, UpstreamRateLimited) and error.retry_after == 3.0
    _, _, error = await run(llm)
    assert isinstance(error, StreamDropped)
    _, _, error = await run(make_llm(idle_timeout=0.2))
    assert isinstance(error, UpstreamTimeout) and "idle" in error.detail
    text, _, error = await run(llm)
    assert (text, error) == (DEFAULT_TEXT, None)
    assert len({r["peer"] for r in upstream.requests[:2]}) == 1  # the connection was reused
