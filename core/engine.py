"""The conversation engine: one turn from a person's words to a streamed, remembered reply."""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import structlog

from core import metrics
from core.commands import CHANGES, Command, parse_command, run_command
from core.config import EngineSettings
from core.errors import ParleyError, QueueTimeout, StorageError, UpstreamError, UpstreamTimeout
from core.line import Line
from core.llm import LLM
from core.memory import MemoryStore
from core.model import (
    ChannelSettings,
    ConversationKey,
    MessageStatus,
    Role,
    StoredMessage,
    Turn,
    Usage,
    estimate_tokens,
)
from core.ratelimit import RateLimiter
from core.reply import Answer, Answerer
from core.sink import ReplySink
from core.streamer import Streamer
from core.transcript import Memory, Repair, Transcript
from core.validation import InvalidPrompt, validate_prompt

log = structlog.get_logger(__name__)

DRAIN_FINALS_SECONDS = 10.0  # after interrupting, time for the "(interrupted)" finals
CRASH_SENTENCE = "Something went wrong on my side while answering. Please try again."
BUSY_SENTENCE = (
    "I'm answering a lot of people right now and my waiting line is full. Please try again "
    "in a minute."
)
STOPPING_SENTENCE = "parley is restarting. Please send that again in a minute."
NOT_SAVED = "_(I couldn't save this answer to memory just now; I'll keep trying.)_"


class Outcome(enum.StrEnum):
    """How a turn ended, for metrics and tests."""

    COMMAND = "command"
    REFUSED = "refused"
    RATE_LIMITED = "rate_limited"
    BUSY = "busy"
    COMPLETE = "complete"
    PARTIAL = "partial"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class TurnResult:
    """What became of a turn, for front doors that answer in their own format (HTTP API).

    `reply` is the model's text without `note` (the sentence shown after it: a failure, a
    cut-off). `notice` is a one-off answer (a command's, a refusal). `error` names what
    failed: "upstream_timeout", "upstream", "storage" or "internal"; "busy" when the turn
    waited in line past PARLEY_QUEUE_TIMEOUT (or found the line full); "stopping" when
    parley is shutting down.
    """

    outcome: Outcome
    reply: str = ""
    note: str = ""
    notice: str = ""
    usage: Usage | None = None
    retry_after: float | None = None
    error: str | None = None


@dataclass
class _Lane:
    """Turns of one conversation run one at a time, in arrival order (asyncio.Lock is FIFO)."""

    lock: asyncio.Lock
    users: int = 0


class Engine:
    """Handles turns from every front door; owns no platform and no database driver."""

    def __init__(
        self,
        settings: EngineSettings,
        store: MemoryStore,
        llm: LLM,
    ) -> None:
        self.settings = settings
        self.store = store
        self.llm = llm
        self.accepting = True
        self._memory = Memory(store)
        self.line = Line(ceiling=settings.max_concurrent_streams, max_queued=settings.max_queued)
        self._answerer = Answerer(
            llm, self.line, max_tokens=settings.max_tokens, queue_timeout=settings.queue_timeout
        )
        self._lanes: dict[ConversationKey, _Lane] = {}
        self._active = 0
        self._saving: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.limiter = RateLimiter(
            per_minute=settings.rate_limit_per_minute,
            burst=settings.rate_limit_burst,
        )

    @property
    def active_turns(self) -> int:
        """Turns being handled right now."""
        return self._active

    async def handle(self, turn: Turn, sink: ReplySink) -> TurnResult:
        """Answer one turn on `sink`. Never raises: failures become a sentence in the chat.

        Turns of one conversation are answered one at a time, in the order `handle` was
        called (nothing is awaited before a turn takes its place in the conversation's
        lane), so a front door hands each turn in as it arrives and keeps no order of its
        own."""
        if not self.accepting:
            return await _refuse(
                sink, Outcome.BUSY, STOPPING_SENTENCE, retry_after=60.0, error="stopping"
            )
        self._active += 1
        self._idle.clear()
        try:
            result = await self._logged(turn, sink)
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()
        metrics.TURNS.labels(turn.key.platform, result.outcome.value).inc()
        return result

    async def _logged(self, turn: Turn, sink: ReplySink) -> TurnResult:
        key = turn.key
        with structlog.contextvars.bound_contextvars(
            request_id=turn.request_id,
            platform=key.platform,
            workspace=key.workspace,
            channel=key.channel,
            user=turn.author,
        ):
            try:
                result = await self._handle(turn, sink)
            except asyncio.CancelledError:
                raise
            except ParleyError as exc:
                log.warning("turn_failed", error=type(exc).__name__, detail=exc.detail)
                result = await _refuse(sink, Outcome.FAILED, exc.user_message, error=_kind(exc))
            except Exception:
                log.exception("turn_crashed")
                result = await _refuse(sink, Outcome.FAILED, CRASH_SENTENCE, error="internal")
            log.info("turn_done", outcome=result.outcome.value)
            return result

    async def _handle(self, turn: Turn, sink: ReplySink) -> TurnResult:
        command = turn.command
        if command is None and turn.words_are_commands:
            command = parse_command(turn.text)
        if command is not None and command.arg:
            try:  # an argument is kept and sent upstream later (`system`): same rules
                validate_prompt(command.arg, max_chars=self.settings.max_prompt_chars)
            except InvalidPrompt as exc:
                metrics.VALIDATION_REFUSALS.labels(turn.key.platform).inc()
                return await _refuse(sink, Outcome.REFUSED, exc.user_message)
        prompt = ""
        if command is None:
            try:
                prompt = validate_prompt(
                    turn.text, max_chars=self.settings.max_prompt_chars, mentions=turn.mentions
                )
            except InvalidPrompt as exc:
                metrics.VALIDATION_REFUSALS.labels(turn.key.platform).inc()
                return await _refuse(sink, Outcome.REFUSED, exc.user_message)
        # Commands count too: nothing a person sends is free of the limit.
        wait = self.limiter.check(_user_key(turn.key, turn.author), str(turn.key), time.monotonic())
        if wait > 0:
            metrics.RATE_LIMITED.labels(turn.key.platform).inc()
            return await _refuse(sink, Outcome.RATE_LIMITED, _slow_down(wait), retry_after=wait)
        async with self._lane(turn.key):
            if command is not None:
                return await self._command(turn, command, sink)
            return await self._converse(turn, prompt, sink)

    def admits(self, turn_key: ConversationKey, author: str) -> bool:
        """Whether a turn of `author` would pass the rate limit now (nothing taken): a front
        door asks before work it would do for the turn, such as looking names up."""
        return self.limiter.peek(_user_key(turn_key, author), str(turn_key), time.monotonic()) == 0

    # -- commands -------------------------------------------------------------------------
    async def _command(self, turn: Turn, command: Command, sink: ReplySink) -> TurnResult:
        """Answer a command. One that changes the channel is an admin's, and everyone in the
        channel is told of it (a quiet change would steer the next person's answers)."""
        key = turn.key
        current = await self.channel_settings(key)
        result = run_command(
            command,
            current,
            default_model=self.settings.model,
            models=self.settings.model_names,
            default_system=self.settings.system_prompt,
        )
        if not result.changes(current):
            return await _refuse(sink, Outcome.COMMAND, result.reply)
        if not await self._is_admin(turn):
            log.info("settings_change_refused", command=command.name)
            sentence = f"Only an admin can {CHANGES[command.name]}; ask one of them."
            return await _refuse(sink, Outcome.REFUSED, sentence, error="forbidden")
        reply = result.reply
        if result.reset:
            count = await self._memory.forget(key)
            reply = f"Done: I forgot this channel's conversation ({count} messages)."
        else:
            await self._memory.save_settings(key, result.settings)
        log.info("settings_changed", command=command.name)
        said = f"{reply} _(by {turn.author_name or turn.author})_"
        try:
            await sink.announce(said)
        except Exception:
            log.warning("announce_failed", exc_info=True)
        return TurnResult(Outcome.COMMAND, notice=said)

    async def _is_admin(self, turn: Turn) -> bool:
        if turn.admin or turn.author in self.settings.admin_ids:
            return True
        if turn.ask_admin is None:
            return False
        try:
            return await turn.ask_admin()
        except Exception:  # the platform would not say: not an admin, this time
            log.warning("admin_check_failed", exc_info=True)
            return False

    async def channel_settings(self, key: ConversationKey) -> ChannelSettings:
        """The channel's settings, from a bounded cache in front of the store."""
        return await self._memory.settings(key)

    # -- a conversation turn -----------------------------------------------------------------
    async def _converse(self, turn: Turn, prompt: str, sink: ReplySink) -> TurnResult:
        if self.line.full:
            return await _refuse(sink, Outcome.BUSY, BUSY_SENTENCE, retry_after=60.0, error="busy")
        chosen = await self.channel_settings(turn.key)
        memo = self._memory.transcript(turn, sink) if chosen.memory else None
        streamer = Streamer(
            sink,
            flush_interval=self.settings.flush_interval,
            placeholder_after=self.settings.placeholder_after,
            report=memo,
        )
        try:
            history = await self._history(turn, prompt, chosen, memo)
            streamer.start()
            answer = await self._answerer.answer(
                self._system_prompt(chosen), history, chosen.model or self.settings.model, streamer
            )
        except BaseException:
            await streamer.cancel()
            raise
        # The final text goes out while the reply is saved, not after: under load the save
        # waits for a group commit, and the person should not wait for it.
        saved = asyncio.ensure_future(memo.finish(answer)) if memo is not None else None
        await streamer.finish(answer.note)
        note = answer.note
        if memo is not None and saved is not None and not await saved:
            note = f"{note}\n\n{NOT_SAVED}" if note else NOT_SAVED  # for the API's `note`
            self._track(memo.save_later(answer))
        _count_tokens(history, answer)
        metrics.REPLY_EDITS.observe(streamer.stats.edits)
        return TurnResult(
            _OUTCOMES[answer.status],
            reply=answer.text,
            note=note,
            usage=answer.usage,
            retry_after=getattr(answer.error, "retry_after", None),
            error=_kind(answer.error) if answer.error else None,
        )

    async def _history(
        self, turn: Turn, prompt: str, chosen: ChannelSettings, memo: Transcript | None
    ) -> list[StoredMessage]:
        """The context for the model: the window before this turn (read while the user's
        message is persisted: nothing said is lost), then the user's message."""
        mine = StoredMessage(
            Role.USER,
            prompt,
            estimate_tokens(prompt),
            author=turn.author,
            request_id=turn.request_id,
        )
        if memo is None:
            return [mine]
        budget = self.settings.history_tokens - estimate_tokens(self._system_prompt(chosen))
        turns = 2 * self.settings.history_turns
        loaded = await memo.open(mine, messages=turns, token_budget=max(1, budget))
        window = _fit(loaded, messages=turns, tokens=budget - mine.tokens)
        window.append(mine)
        while len(window) > 1 and window[0].role is not Role.USER:
            window = window[1:]  # a context starts with a question, not half an exchange
        return window

    def _system_prompt(self, chosen: ChannelSettings) -> str:
        if chosen.system_prompt is not None:
            return chosen.system_prompt
        return self.settings.system_prompt

    # -- after a crash -------------------------------------------------------------------
    async def repairs(self, platform: str) -> list[Repair]:
        """Platform messages a crash left looking unfinished, with the text to show now.

        A front door edits each one after it connects, then calls `repaired()`."""
        return await self._memory.repairs(platform)

    async def repaired(self, repair: Repair) -> None:
        """The platform message now says it was interrupted."""
        await self._memory.repaired(repair)

    # -- shutdown -------------------------------------------------------------------------
    async def drain(self, grace: float) -> None:
        """Stop taking turns, let replies in flight finish for `grace` seconds, then end
        the rest marked interrupted (in the chat and in memory)."""
        self.accepting = False
        deadline = asyncio.get_running_loop().time() + grace
        if not await self._wait_idle(grace):
            count = self._answerer.interrupt_all()
            log.warning("replies_interrupted", count=count, grace=grace)
            await self._wait_idle(DRAIN_FINALS_SECONDS)
        if self._saving:  # replies whose final save is being retried
            left = max(deadline - asyncio.get_running_loop().time(), DRAIN_FINALS_SECONDS)
            await asyncio.wait(self._saving, timeout=left)

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._saving.add(task)
        task.add_done_callback(self._saving.discard)

    async def _wait_idle(self, timeout: float) -> bool:
        if self._active == 0:
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

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
    MessageStatus.INTERRUPTED: Outcome.INTERRUPTED,
}


def _fit(earlier: list[StoredMessage], *, messages: int, tokens: int) -> list[StoredMessage]:
    """The newest of `earlier` (oldest first) within both limits, oldest first."""
    kept: list[StoredMessage] = []
    used = 0
    for message in reversed(earlier):
        if len(kept) >= messages or used + message.tokens > tokens:
            break
        kept.append(message)
        used += message.tokens
    kept.reverse()
    return kept


def _count_tokens(history: list[StoredMessage], answer: Answer) -> None:
    if answer.usage is not None:
        metrics.TOKENS.labels("in").inc(answer.usage.prompt_tokens)
        metrics.TOKENS.labels("out").inc(answer.usage.completion_tokens)
    else:
        metrics.TOKENS.labels("in").inc(sum(m.tokens for m in history))
        metrics.TOKENS.labels("out").inc(estimate_tokens(answer.text) if answer.text else 0)


def _user_key(key: ConversationKey, author: str) -> str:
    return f"{key.platform}:{key.workspace}:{author}"


def _slow_down(wait: float) -> str:
    seconds = max(1, round(wait + 0.49))
    unit = "second" if seconds == 1 else "seconds"
    return f"You're sending messages faster than I can answer. Try again in {seconds} {unit}."


async def _refuse(
    sink: ReplySink,
    outcome: Outcome,
    sentence: str,
    *,
    retry_after: float | None = None,
    error: str | None = None,
) -> TurnResult:
    """Answer with a one-off sentence (ephemeral where the platform can)."""
    await _notice(sink, sentence)
    return TurnResult(outcome, notice=sentence, retry_after=retry_after, error=error)


def _kind(exc: ParleyError) -> str:
    if isinstance(exc, QueueTimeout):
        return "busy"
    if isinstance(exc, UpstreamTimeout):
        return "upstream_timeout"
    if isinstance(exc, UpstreamError):
        return "upstream"
    if isinstance(exc, StorageError):
        return "storage"
    return "internal"


async def _notice(sink: ReplySink, text: str) -> None:
    try:
        await sink.notice(text)
    except Exception:
        log.warning("notice_failed", exc_info=True)
