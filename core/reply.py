"""Asking the model: one reply streamed into a Streamer, every failure turned into a note."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from core import metrics
from core.errors import ContextTooLong, StreamDropped, UpstreamError
from core.llm import LLM, Delta, Finish
from core.model import ChatMessage, MessageStatus, Role, StoredMessage, Usage
from core.split import is_blank
from core.streamer import Streamer

log = structlog.get_logger(__name__)

EMPTY_ANSWER = "_(The model returned an empty answer.)_"
LENGTH_NOTE = "_(The answer reached its length limit and was cut here.)_"
INTERRUPTED_NOTE = "_(interrupted: parley is restarting. Please ask again in a moment.)_"


@dataclass(frozen=True, slots=True)
class Answer:
    """What the model said, how it ended, and the note to show after it."""

    text: str
    status: MessageStatus
    note: str
    usage: Usage | None
    error: UpstreamError | None = None


class Answerer:
    """Streams one answer; shutdown can interrupt every answer in flight at once."""

    def __init__(self, llm: LLM, *, max_tokens: int) -> None:
        self._llm = llm
        self._max_tokens = max_tokens
        self._upstreams: set[asyncio.Task[Finish]] = set()

    def interrupt_all(self) -> int:
        """End every upstream stream now; their replies end marked interrupted."""
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
        """Ask, retrying once with a smaller window when the context is too long."""
        retried = False
        while True:
            try:
                finish = await self._interruptible(_messages(system, history), model, streamer)
            except _Interrupted:
                status = MessageStatus.INTERRUPTED
                return Answer(streamer.text, status, INTERRUPTED_NOTE, None)
            except ContextTooLong as exc:
                if retried or streamer.text or len(history) <= 1:
                    return _failed(streamer.text, exc)
                retried = True
                history = history[len(history) // 2 :]
                log.info("context_too_long_retry", messages=len(history))
                continue
            except UpstreamError as exc:
                log.warning("upstream_failed", error=type(exc).__name__, detail=exc.detail)
                return _failed(streamer.text, exc)
            text = streamer.text
            empty = EMPTY_ANSWER if is_blank(text) else ""  # whitespace shows nothing either
            note = LENGTH_NOTE if finish.reason == "length" else empty
            return Answer(text, MessageStatus.COMPLETE, note, finish.usage)

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
                    metrics.FIRST_TOKEN.observe(time.monotonic() - started)
            else:
                finish = event
        metrics.UPSTREAM_DURATION.observe(time.monotonic() - started)
        if finish is None:  # the port promises a Finish; be safe anyway
            raise StreamDropped(detail="stream ended without a finish event")
        return finish


class _Interrupted(Exception):
    """The upstream task was cancelled by interrupt_all()."""


def _messages(system: str, history: Sequence[StoredMessage]) -> list[ChatMessage]:
    head = [ChatMessage(Role.SYSTEM, system)] if system.strip() else []
    return head + [ChatMessage(m.role, m.content) for m in history]


def _failed(text: str, exc: UpstreamError) -> Answer:
    if text:
        return Answer(text, MessageStatus.PARTIAL, f"_({exc.user_message})_", None, exc)
    return Answer("", MessageStatus.FAILED, exc.user_message, None, exc)
