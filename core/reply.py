"""Asking the model: one reply streamed into a Streamer, every failure turned into a note.

A turn waits in the line (core.line) for an upstream slot, showing its place; when the model
server says "come back later" (429/503) before the reply has any text, the turn gives its
slot back, shows that it waits for the model server, and asks again when told to — all
within one deadline (PARLEY_QUEUE_TIMEOUT from when it first joined the line).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from core import metrics
from core.errors import ContextTooLong, ParleyError, QueueTimeout, StreamDropped, UpstreamError
from core.line import Line, LineClosed, LineTimeout
from core.llm import LLM, Delta, Finish
from core.model import ChatMessage, MessageStatus, Role, StoredMessage, Usage
from core.sink import THINKING, in_line, model_wait
from core.split import is_blank
from core.streamer import Streamer

log = structlog.get_logger(__name__)

EMPTY_ANSWER = "_(The model returned an empty answer.)_"
LENGTH_NOTE = "_(The answer reached its length limit and was cut here.)_"
INTERRUPTED_NOTE = "_(interrupted: parley is restarting. Please ask again in a moment.)_"
FIRST_BACKOFF = 1.0  # seconds before asking again when the model server gave no Retry-After
MAX_BACKOFF = 30.0


@dataclass(frozen=True, slots=True)
class Answer:
    """What the model said, how it ended, and the note to show after it."""

    text: str
    status: MessageStatus
    note: str
    usage: Usage | None
    error: ParleyError | None = None


class Answerer:
    """Streams one answer; shutdown can interrupt every answer in flight at once."""

    def __init__(self, llm: LLM, line: Line, *, max_tokens: int, queue_timeout: float) -> None:
        self._llm = llm
        self._line = line
        self._max_tokens = max_tokens
        self._queue_timeout = queue_timeout
        self._upstreams: set[asyncio.Task[Finish]] = set()
        self._stopping = asyncio.Event()

    def interrupt_all(self) -> int:
        """End every upstream stream and every wait now; those replies end interrupted."""
        self._stopping.set()
        self._line.close()
        for task in self._upstreams:
            task.cancel()
        return len(self._upstreams)

    async def answer(
        self,
        system: str,
        history: list[StoredMessage],
        model: str,
        streamer: Streamer,
    ) -> Answer:
        """Ask, waiting in line (and for the model server) up to the queue timeout, and
        retrying once with a smaller window when the context is too long."""
        place = self._line.place()
        joined = time.monotonic()
        deadline = joined + self._queue_timeout
        messages = _messages(system, history)
        retried = False
        waits = 0  # the model server's "come back later"s so far
        while True:
            try:
                finish = await self._attempt(place, deadline, messages, model, streamer)
            except LineTimeout:
                waited = time.monotonic() - joined
                log.warning("queue_timeout", waited=round(waited, 1))
                return _failed(streamer.text, QueueTimeout(waited))
            except (LineClosed, _Interrupted):
                return Answer(streamer.text, MessageStatus.INTERRUPTED, INTERRUPTED_NOTE, None)
            except ContextTooLong as exc:
                if retried or streamer.text or len(history) <= 1:
                    return _failed(streamer.text, exc)
                retried = True
                history = history[len(history) // 2 :]
                messages = _messages(system, history)
                log.info("context_too_long_retry", messages=len(history))
                continue
            except UpstreamError as exc:
                if exc.overloaded and not streamer.text:
                    waits += 1
                    if await self._wait_for_model(exc, waits, deadline, streamer):
                        continue
                    if self._stopping.is_set():
                        return Answer("", MessageStatus.INTERRUPTED, INTERRUPTED_NOTE, None)
                log.warning("upstream_failed", error=type(exc).__name__, detail=exc.detail)
                return _failed(streamer.text, exc)
            metrics.QUEUE_WAIT.observe(finish.started - joined)
            text = streamer.text
            empty = EMPTY_ANSWER if is_blank(text) else ""  # whitespace shows nothing either
            note = LENGTH_NOTE if finish.reason == "length" else empty
            return Answer(text, MessageStatus.COMPLETE, note, finish.usage)

    async def _attempt(
        self,
        place: int,
        deadline: float,
        messages: list[ChatMessage],
        model: str,
        streamer: Streamer,
    ) -> _Streamed:
        """One upstream stream: a slot from the line (waiting, visibly, if need be), then ask."""

        def report(ahead: int) -> None:
            streamer.waiting(in_line(ahead))

        await self._line.enter(place, deadline=deadline, waiting=report)
        started = time.monotonic()
        try:
            streamer.waiting(THINKING)
            finish = await self._interruptible(messages, model, streamer)
        finally:
            self._line.leave()
        return _Streamed(finish.reason, finish.usage, started)

    async def _wait_for_model(
        self, exc: UpstreamError, waits: int, deadline: float, streamer: Streamer
    ) -> bool:
        """The model server said "come back later": wait (showing so) and say True, or False
        when its wait would pass the deadline or parley is stopping."""
        self._line.overloaded()
        metrics.UPSTREAM_OVERLOADED.inc()
        backoff = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (waits - 1))
        wait = exc.retry_after if exc.retry_after is not None else backoff
        if time.monotonic() + wait > deadline or self._stopping.is_set():
            return False
        log.info("upstream_overloaded_wait", error=type(exc).__name__, seconds=wait, waits=waits)
        streamer.waiting(model_wait(wait))
        try:
            async with asyncio.timeout(wait):
                await self._stopping.wait()
        except TimeoutError:
            return True
        return False

    async def _interruptible(
        self,
        messages: list[ChatMessage],
        model: str,
        streamer: Streamer,
    ) -> Finish:
        task = asyncio.create_task(self._stream(messages, model, streamer))
        self._upstreams.add(task)
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and (current is None or not current.cancelling()):
                raise _Interrupted from None  # interrupt_all(), not our caller
            raise
        finally:
            self._upstreams.discard(task)
            if not task.done():
                task.cancel()

    async def _stream(
        self,
        messages: list[ChatMessage],
        model: str,
        streamer: Streamer,
    ) -> Finish:
        """The token loop: per chunk only feed(); no I/O, no logging."""
        finish: Finish | None = None
        started = time.monotonic()
        first = True
        stream = self._llm.stream(messages, model=model, max_tokens=self._max_tokens)
        async for event in stream:
            if isinstance(event, Delta):
                streamer.feed(event.text)
                if first:
                    first = False
                    waited = time.monotonic() - started
                    metrics.FIRST_TOKEN.observe(waited)
                    self._line.first_token(waited)
            else:
                finish = event
        metrics.UPSTREAM_DURATION.observe(time.monotonic() - started)
        if finish is None:  # the port promises a Finish; be safe anyway
            raise StreamDropped(detail="stream ended without a finish event")
        return finish


@dataclass(frozen=True, slots=True)
class _Streamed:
    """How a stream ended, and when it got its slot."""

    reason: str
    usage: Usage | None
    started: float


class _Interrupted(Exception):
    """The upstream task was cancelled by interrupt_all()."""


def _messages(system: str, history: Sequence[StoredMessage]) -> list[ChatMessage]:
    head = [ChatMessage(Role.SYSTEM, system)] if system.strip() else []
    return head + [ChatMessage(m.role, m.content) for m in history]


def _failed(text: str, exc: ParleyError) -> Answer:
    if text:
        return Answer(text, MessageStatus.PARTIAL, f"_({exc.user_message})_", None, exc)
    return Answer("", MessageStatus.FAILED, exc.user_message, None, exc)
