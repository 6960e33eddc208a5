"""The conversation engine: one turn from a person's words to a streamed, remembered reply."""

from __future__ import annotations

import asyncio
import enum
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog

from core.commands import Command, parse_command, run_command
from core.config import Settings
from core.errors import ContextTooLong, ParleyError, StreamDropped, UpstreamError
from core.llm import LLM, Delta, Finish
from core.memory import MemoryStore
from core.model import (
    ChannelSettings,
    ChatMessage,
    ConversationKey,
    MessageStatus,
    Role,
    StoredMessage,
    Turn,
    Usage,
    estimate_tokens,
)
from core.ratelimit import RateLimiter
from core.sink import ReplySink
from core.streamer import Streamer
from core.validation import InvalidPrompt, validate_prompt

log = structlog.get_logger(__name__)

SETTINGS_CACHE = 10_000
CRASH_SENTENCE = "Something went wrong on my side while answering. Please try again."
BUSY_SENTENCE = "I'm answering a lot of people right now. Please try again in a few seconds."
EMPTY_ANSWER = "_(The model returned an empty answer.)_"
NOT_SAVED = "_(I couldn't save this answer to memory.)_"
LENGTH_NOTE = "_(The answer reached its length limit and was cut here.)_"


class Outcome(enum.StrEnum):
    """How a turn ended, for metrics and tests."""

    COMMAND = "command"
    REFUSED = "refused"
    RATE_LIMITED = "rate_limited"
    BUSY = "busy"
    COMPLETE = "complete"
    PARTIAL = "partial"
    FAILED = "failed"


@dataclass
class _Lane:
    """Turns of one conversation run one at a time, in arrival order (asyncio.Lock is FIFO)."""

    lock: asyncio.Lock
    users: int = 0


@dataclass(frozen=True, slots=True)
class _Answer:
    text: str
    status: MessageStatus
    note: str
    usage: Usage | None


class Engine:
    """Handles turns from every front door; owns no platform and no database driver."""

    def __init__(
        self,
        settings: Settings,
        store: MemoryStore,
        llm: LLM,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.store = store
        self.llm = llm
        self._clock = clock
        self._lanes: dict[ConversationKey, _Lane] = {}
        self._channel_settings: OrderedDict[ConversationKey, ChannelSettings] = OrderedDict()
        self.limiter = RateLimiter(
            per_minute=settings.rate_limit_per_minute,
            burst=settings.rate_limit_burst,
            max_streams=settings.max_concurrent_streams,
        )

    async def handle(self, turn: Turn, sink: ReplySink) -> Outcome:
        """Answer one turn on `sink`. Never raises: failures become a sentence in the chat."""
        key = turn.key
        with structlog.contextvars.bound_contextvars(
            request_id=turn.request_id,
            platform=key.platform,
            workspace=key.workspace,
            channel=key.channel,
            user=turn.author,
        ):
            try:
                outcome = await self._handle(turn, sink)
            except asyncio.CancelledError:
                raise
            except ParleyError as exc:
                log.warning("turn_failed", error=type(exc).__name__, detail=exc.detail)
                await _notice(sink, exc.user_message)
                outcome = Outcome.FAILED
            except Exception:
                log.exception("turn_crashed")
                await _notice(sink, CRASH_SENTENCE)
                outcome = Outcome.FAILED
            log.info("turn_done", outcome=outcome.value)
            return outcome

    async def _handle(self, turn: Turn, sink: ReplySink) -> Outcome:
        command = parse_command(turn.text)
        if command is not None:
            async with self._lane(turn.key):
                reply = await self._run_command(turn.key, command)
            await _notice(sink, reply)
            return Outcome.COMMAND
        try:
            prompt = validate_prompt(turn.text, max_chars=self.settings.max_prompt_chars)
        except InvalidPrompt as exc:
            await _notice(sink, exc.user_message)
            return Outcome.REFUSED
        user_key = f"{turn.key.platform}:{turn.key.workspace}:{turn.author}"
        wait = self.limiter.check(user_key, str(turn.key), self._clock())
        if wait > 0:
            await _notice(sink, _slow_down(wait))
            return Outcome.RATE_LIMITED
        async with self._lane(turn.key):
            return await self._converse(turn, prompt, sink)

    # -- commands -------------------------------------------------------------------------
    async def _run_command(self, key: ConversationKey, command: Command) -> str:
        current = await self.channel_settings(key)
        result = run_command(
            command,
            current,
            default_model=self.settings.model,
            models=self.settings.model_names,
            default_system=self.settings.system_prompt,
        )
        if result.reset:
            count = await self.store.reset(key)
            return f"Done: I forgot this channel's conversation ({count} messages)."
        if result.settings != current:
            await self.store.save_settings(key, result.settings)
            self._remember_settings(key, result.settings)
        return result.reply

    async def channel_settings(self, key: ConversationKey) -> ChannelSettings:
        """The channel's settings, from a bounded cache in front of the store."""
        cached = self._channel_settings.get(key)
        if cached is not None:
            self._channel_settings.move_to_end(key)
            return cached
        loaded = await self.store.settings(key)
        self._remember_settings(key, loaded)
        return loaded

    def _remember_settings(self, key: ConversationKey, value: ChannelSettings) -> None:
        self._channel_settings[key] = value
        self._channel_settings.move_to_end(key)
        while len(self._channel_settings) > SETTINGS_CACHE:
            self._channel_settings.popitem(last=False)

    # -- a conversation turn -----------------------------------------------------------------
    async def _converse(self, turn: Turn, prompt: str, sink: ReplySink) -> Outcome:
        chosen = await self.channel_settings(turn.key)
        if not self.limiter.try_start_stream():
            await _notice(sink, BUSY_SENTENCE)
            return Outcome.BUSY
        streamer = Streamer(
            sink,
            flush_interval=self.settings.flush_interval,
            placeholder_after=self.settings.placeholder_after,
        )
        try:
            mine = StoredMessage(
                Role.USER,
                prompt,
                estimate_tokens(prompt),
                author=turn.author,
                request_id=turn.request_id,
            )
            history = await self._history(turn.key, mine, chosen)
            streamer.start()
            answer = await self._ask(history, chosen, streamer)
        except BaseException:
            await streamer.cancel()
            raise
        finally:
            self.limiter.end_stream()
        note = answer.note
        if chosen.memory and not await self._remember(turn, answer):
            note = f"{note}\n\n{NOT_SAVED}" if note else NOT_SAVED
        await streamer.finish(note)
        return _OUTCOMES[answer.status]

    async def _remember(self, turn: Turn, answer: _Answer) -> bool:
        """Store the reply with its status and usage; False when the store failed."""
        tokens = answer.usage.completion_tokens if answer.usage else 0
        reply = StoredMessage(
            Role.ASSISTANT,
            answer.text,
            tokens or estimate_tokens(answer.text),
            status=answer.status,
            request_id=turn.request_id,
        )
        try:
            await self.store.append(turn.key, reply)
        except ParleyError as exc:
            log.error("reply_not_saved", error=type(exc).__name__, detail=exc.detail)
            return False
        return True

    async def _history(
        self, key: ConversationKey, mine: StoredMessage, chosen: ChannelSettings
    ) -> list[StoredMessage]:
        """Persist the user's message first (nothing said is lost), then load the window."""
        if not chosen.memory:
            return [mine]
        await self.store.append(key, mine)
        system = self._system_prompt(chosen)
        window = await self.store.window(
            key,
            messages=2 * self.settings.history_turns + 1,
            token_budget=max(1, self.settings.history_tokens - estimate_tokens(system)),
        )
        while len(window) > 1 and window[0].role is not Role.USER:
            window = window[1:]  # a context starts with a question, not half an exchange
        return window

    def _system_prompt(self, chosen: ChannelSettings) -> str:
        if chosen.system_prompt is not None:
            return chosen.system_prompt
        return self.settings.system_prompt

    async def _ask(
        self, history: list[StoredMessage], chosen: ChannelSettings, streamer: Streamer
    ) -> _Answer:
        """Stream the model's answer into `streamer`; every failure becomes a note."""
        model = chosen.model or self.settings.model
        retried = False
        while True:
            try:
                finish = await self._stream(self._messages(history, chosen), model, streamer)
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
            note = LENGTH_NOTE if finish.reason == "length" else ("" if text else EMPTY_ANSWER)
            return _Answer(text, MessageStatus.COMPLETE, note, finish.usage)

    def _messages(
        self, history: Sequence[StoredMessage], chosen: ChannelSettings
    ) -> list[ChatMessage]:
        system = self._system_prompt(chosen)
        head = [ChatMessage(Role.SYSTEM, system)] if system.strip() else []
        return head + [ChatMessage(m.role, m.content) for m in history]

    async def _stream(self, messages: list[ChatMessage], model: str, streamer: Streamer) -> Finish:
        finish: Finish | None = None
        async for event in self.llm.stream(
            messages, model=model, max_tokens=self.settings.max_tokens
        ):
            if isinstance(event, Delta):
                streamer.feed(event.text)
            else:
                finish = event
        if finish is None:  # the port promises a Finish; be safe anyway
            raise StreamDropped(detail="stream ended without a finish event")
        return finish

    @asynccontextmanager
    async def _lane(self, key: ConversationKey) -> AsyncIterator[None]:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(asyncio.Lock())
        lane.users += 1
        try:
            async with lane.lock:
                yield
        finally:
            lane.users -= 1
            if lane.users == 0:
                del self._lanes[key]


_OUTCOMES = {
    MessageStatus.COMPLETE: Outcome.COMPLETE,
    MessageStatus.PARTIAL: Outcome.PARTIAL,
    MessageStatus.FAILED: Outcome.FAILED,
}


def _failed(text: str, exc: ParleyError) -> _Answer:
    if text:
        return _Answer(text, MessageStatus.PARTIAL, f"_({exc.user_message})_", None)
    return _Answer("", MessageStatus.FAILED, exc.user_message, None)


def _slow_down(wait: float) -> str:
    seconds = max(1, round(wait + 0.49))
    unit = "second" if seconds == 1 else "seconds"
    return f"You're sending messages faster than I can answer. Try again in {seconds} {unit}."


async def _notice(sink: ReplySink, text: str) -> None:
    try:
        await sink.notice(text)
    except Exception:
        log.warning("notice_failed", exc_info=True)
