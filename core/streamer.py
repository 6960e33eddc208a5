"""Streamer: shows one reply on a ReplySink while the model is still writing it.

The token loop only calls `feed()` (append to a buffer, wake the sender); one sender task
per reply does every platform call, always with the newest text, so a slow platform never
slows the stream and a skipped frame is never queued. Cadence: the first text at once (or
a placeholder when it is slow to come), then at most one edit per flush interval, then the
final text as soon as the stream ends — each through the sink's shared edit budgets.
Before the first words a reply may show a sign instead (core.sink.Sign: thinking, waiting
in line, waiting for the model server); a sign that changes is shown anew at most every
SIGN_REFRESH seconds, as an optional edit, and the first text replaces it at once.

When the sink's edit budget is crowded (more replies streaming than its window can end
promptly) and the sink has an `aside` (Slack's ephemerals), a new reply does not stream: it
tells the asker aside that the answer is coming and posts the whole answer when it ends, so
its end waits for no edit slot and the thread holds nothing but the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import structlog

from core import metrics
from core.budget import EditBudget, Priority, spending, take_slots, used
from core.errors import PlatformRateLimited
from core.sink import PLACEHOLDER, THINKING, WRITING, MessageRef, ReplySink, Sign
from core.split import Piece, is_blank, split_text

log = structlog.get_logger(__name__)

__all__ = ["PLACEHOLDER", "Streamer"]

SIGN_REFRESH = 5.0  # seconds between two versions of a reply's sign
FILL_MARGIN = 64  # characters: a fence reopened and closed around a piece may take this many
FENCE_RESERVE = len("\n```")  # room for a sink to close an open code fence
MANDATORY_ATTEMPTS = 4  # errors other than 429 before a call is given up
MAX_RATE_LIMITED = 30  # 429s in a row before a call is given up
T = TypeVar("T")


class ShownReport(Protocol):
    """Told after each successful call on the message a reply is streamed into: `shown` is
    what it shows now (PLACEHOLDER for a sign), `text` the reply so far (core.transcript
    saves it, so a crash can later be repaired on the platform)."""

    def shown(self, ref: MessageRef, shown: str, text: str) -> None: ...


@dataclass
class _Shown:
    """A platform message this reply owns and the text it shows now (a sign's, if `sign`)."""

    ref: MessageRef
    text: str
    sign: Sign | None = None


@dataclass
class StreamStats:
    """What the streamer did, for metrics and tests."""

    posts: int = 0
    edits: int = 0
    rate_limited: int = 0
    failed_calls: int = 0
    first_visible_at: float | None = None
    first_text_at: float | None = None
    final_at: float | None = None
    messages: list[str] = field(default_factory=list)


class Streamer:
    """Shows one reply: `start()`, `feed()` per chunk, then `await finish(note)`."""

    def __init__(
        self,
        sink: ReplySink,
        *,
        flush_interval: float,
        placeholder_after: float,
        report: ShownReport | None = None,
    ) -> None:
        self._sink = sink
        self._report = report
        self._interval = sink.flush_interval if sink.flush_interval is not None else flush_interval
        self._placeholder_after = placeholder_after
        self._clock = time.monotonic
        self._chunks: list[str] = []
        self._length = 0  # characters fed so far
        # Set by feed() once the text may fill the current message: a frame waiting for its
        # slot then stops waiting, so the message is completed (a call that is never held
        # back) while the stream goes on, not at its end.
        self._filled = asyncio.Event()
        self._fill_at = sink.max_chars - FENCE_RESERVE - FILL_MARGIN
        self._text = ""  # the joined chunks, rebuilt lazily by the sender
        self._note = ""
        self._sign = THINKING  # what the reply shows while it has no text
        self._sign_now = False  # show the sign at once, not after placeholder_after
        self._changed = asyncio.Event()
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed: list[_Shown] = []  # messages completed at the platform's limit
        self._current: _Shown | None = None
        self._last_edit = 0.0
        self._settled = True  # nothing owed until start()
        self.in_one_post = False  # the answer comes in one post at its end (see start())
        self._started = time.monotonic()
        self.stats = StreamStats()
        self._split: tuple[str | None, list[Piece]] = (None, [])  # (text, its pieces)

    # -- the token loop's side: cheap, never awaits a platform --------------------------
    def start(self) -> None:
        """Start the sender task; the placeholder clock starts now."""
        self._started = self._clock()
        budgets = self._sink.edit_budgets
        self.in_one_post = self._sink.aside is not None and any(b.crowded for b in budgets)
        if not self.in_one_post:  # its end is a post then: it owes the edit budgets nothing
            for budget in budgets:
                budget.owe()
            self._settled = False
        self._task = asyncio.create_task(self._run(), name="parley-streamer")

    def feed(self, text: str) -> None:
        """Append a chunk of the reply. O(1); no platform call, no logging."""
        if text:
            self._chunks.append(text)
            self._length += len(text)
            if self._length >= self._fill_at:
                self._filled.set()
            self._changed.set()

    def waiting(self, sign: Sign) -> None:
        """Show `sign` until the first text comes (at once if nothing is shown yet)."""
        if sign != self._sign:
            self._sign = sign
            self._sign_now = sign is not THINKING
            self._changed.set()

    @property
    def text(self) -> str:
        """Everything fed so far, as valid text (what memory stores)."""
        self._join()
        return _valid(self._text)

    async def finish(self, note: str = "") -> None:
        """The stream ended: show the whole text (plus `note`, e.g. an error) and wait."""
        self._note = note if self._sink.inline_notes else ""
        self._done.set()
        self._changed.set()
        if self._task is not None:
            await self._task

    async def cancel(self) -> None:
        """Stop without a final (process shutting down hard)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._settle()

    # -- the sender --------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            if self.in_one_post:
                await self._in_one_post()
                return
            await self._show_first()
            while not self._done.is_set():
                await self._changed.wait()
                self._changed.clear()
                if self._done.is_set():
                    break
                if not self._shows_sign():
                    await self._until(self._last_edit + self._interval)
                elif not self._visible():  # a new sign, not the first text (that goes at once)
                    await self._until(self._last_edit + SIGN_REFRESH, or_text=True)
                if not self._done.is_set():
                    await self._frame()
            await self._final()
        finally:
            self._settle()

    async def _in_one_post(self) -> None:
        """Say aside that the answer is coming; post it whole when the stream ends."""
        assert self._sink.aside is not None
        metrics.ONE_POST_REPLIES.inc()
        aside = asyncio.ensure_future(self._sink.aside(WRITING))
        try:
            await self._done.wait()
        finally:
            aside.cancel()  # still waiting for its slot: the answer itself is the sign now
            (outcome,) = await asyncio.gather(aside, return_exceptions=True)
            if isinstance(outcome, Exception):
                log.warning("aside_failed", error=type(outcome).__name__)
        await self._final()

    async def _show_first(self) -> None:
        deadline = self._started + self._placeholder_after
        # Whitespace is not an answer yet (many models start with "\n\n"): keep waiting.
        while not (self._visible() or self._sign_now or self._done.is_set()):
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - self._clock()))
            except TimeoutError:
                break
        self._changed.clear()
        if self._done.is_set():
            return  # _final posts everything
        body, sign = self._display_tail()
        ref = await self._mandatory_post(body, Priority.FIRST, sign)
        if ref is not None:
            self._current = _Shown(ref, body, sign)
            self._observe(self._current)
            self._last_edit = self._clock()
            self.stats.first_visible_at = self._last_edit
            if sign is None:
                self.stats.first_text_at = self._last_edit
        if self._chunks:
            self._changed.set()  # text may have grown past what was posted

    async def _frame(self) -> None:
        """One optional edit with the newest text, unless the stream ends first."""
        await self._close_full_messages()
        if self._current is None:
            return
        body, sign = self._display_tail()
        if body == self._current.text:
            return
        first = self._current.sign is not None and sign is None
        priority = Priority.FIRST if first else Priority.FRAME
        slot = asyncio.ensure_future(
            take_slots(self._sink.edit_budgets, priority, optional=True, fair_key=self._last_edit)
        )
        done_wait = asyncio.ensure_future(self._done.wait())
        filled = asyncio.ensure_future(self._filled.wait())
        try:
            await asyncio.wait({slot, done_wait, filled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            done_wait.cancel()
            filled.cancel()
        if not slot.done():
            slot.cancel()
            await asyncio.gather(slot, return_exceptions=True)
            if self._filled.is_set() and not self._done.is_set():
                await self._close_full_messages()
            return  # the final (or the next frame) carries the text
        body, sign = self._display_tail()  # newest text at the moment the slot came
        try:
            await self._edit_once(self._current, body, sign)
        finally:
            used(slot.result())
        if first and self._current.sign is None:
            self.stats.first_text_at = self._last_edit

    async def _final(self) -> None:
        await self._close_full_messages(final=True)
        done = len(self._closed)
        # Trailing whitespace-only pieces show nothing (a platform would refuse them).
        bodies = [p.text for p in self._pieces(final=True)[done:] if not is_blank(p.text)]
        if self._current is not None and bodies:
            if bodies[0] != self._current.text:
                await self._mandatory_edit(self._current, bodies[0], Priority.FINAL)
            bodies = bodies[1:]
        self._settle()
        for body in bodies:
            ref = await self._mandatory_post(body, Priority.FINAL)
            if ref is not None:
                if self.stats.first_visible_at is None:
                    self.stats.first_visible_at = self.stats.first_text_at = self._clock()
                self._closed.append(_Shown(ref, body))
        self.stats.final_at = self._clock()
        self.stats.messages = [m.text for m in self._all_messages()]

    async def _close_full_messages(self, *, final: bool = False) -> None:
        """Complete the current message once the text has a piece after it.

        Pieces come from splitting the whole text, and split_text is prefix-stable: a piece
        with another after it never changes again, so it is that message's final text."""
        while self._current is not None:
            pieces = self._pieces(final=final)
            index = len(self._closed)
            if len(pieces) <= index + 1:
                self._rearm_filled(pieces[:index])
                return
            complete = pieces[index].text
            if complete != self._current.text:  # a frame may have shown it already
                await self._mandatory_edit(self._current, complete, Priority.FINAL)
            self._closed.append(self._current)
            body, sign = _text_or_sign(pieces[index + 1].text, THINKING)
            ref = await self._mandatory_post(body, Priority.FIRST, sign)
            self._current = _Shown(ref, body, sign) if ref is not None else None
            self._observe(self._current)

    def _rearm_filled(self, closed: list[Piece]) -> None:
        """Wake a waiting frame again only once the current message may be full."""
        self._filled.clear()
        consumed = sum(len(p.source) for p in closed)
        limit = self._sink.max_chars - FENCE_RESERVE
        self._fill_at = max(consumed + limit - FILL_MARGIN, self._length + FILL_MARGIN)

    # -- text views ------------------------------------------------------------------------
    def _join(self) -> None:
        chunks = self._chunks
        if len(chunks) > 1 or (chunks and chunks[0] is not self._text):  # new text came
            joined = "".join(chunks)
            if _SURROGATE.search(joined):  # an emoji's halves can come in two chunks
                joined = _paired(joined)
            self._chunks = [joined]
        self._text = self._chunks[0] if self._chunks else ""

    def _full(self, *, final: bool = False) -> str:
        """The whole reply so far (with the note once the stream is over), as shown: a
        high surrogate half at the end waits for its partner (and is U+FFFD at the end)."""
        self._join()
        text = self._text
        if "\ud800" <= text[-1:] <= "\udbff":
            text = text[:-1] + "\ufffd" if final else text[:-1]
        if final and self._note:
            return self._note if is_blank(text) else f"{text}\n\n{self._note}"
        return text

    def _pieces(self, *, final: bool = False) -> list[Piece]:
        """The reply cut into messages, leaving room for the sink to close a code fence
        that is still open (`core.split.render_open`)."""
        full = self._full(final=final)
        if self._split[0] != full:  # a frame asks several times; split each text once
            pieces = split_text(full, self._sink.max_chars - FENCE_RESERVE) if full else []
            self._split = (full, pieces)
        return self._split[1]

    def _visible(self) -> bool:
        self._join()
        return not is_blank(self._text)

    def _display_tail(self) -> tuple[str, Sign | None]:
        """What the current message should show now: its text, or the sign (and which)."""
        pieces = self._pieces()
        index = len(self._closed)
        sign = self._sign if index == 0 else THINKING
        return _text_or_sign(pieces[index].text if index < len(pieces) else "", sign)

    def _shows_sign(self) -> bool:
        return self._current is not None and self._current.sign is not None

    def _observe(self, shown: _Shown | None) -> None:
        if self._report is not None and shown is not None and not self._done.is_set():
            self._report.shown(shown.ref, PLACEHOLDER if shown.sign else shown.text, self.text)

    def _all_messages(self) -> list[_Shown]:
        return self._closed + ([self._current] if self._current else [])

    # -- platform calls -----------------------------------------------------------------
    async def _edit_once(self, shown: _Shown, body: str, sign: Sign | None) -> None:
        try:
            await self._sink.edit(shown.ref, body, sign=sign)
        except PlatformRateLimited as exc:
            self.stats.rate_limited += 1
            _slow_down(self._sink.edit_budgets, exc.retry_after)
            self._last_edit = self._clock() + exc.retry_after
            self._changed.set()  # the newest text is still owed, even if the model pauses
            await asyncio.sleep(exc.retry_after)
            return
        except Exception:
            self.stats.failed_calls += 1
            log.warning("frame_edit_failed", exc_info=True)
            self._last_edit = self._clock()  # a failed attempt also waits out the interval
            self._changed.set()
            return
        shown.text, shown.sign = body, sign
        self._observe(shown)
        self.stats.edits += 1
        self._last_edit = self._clock()

    async def _mandatory_edit(self, shown: _Shown, body: str, priority: Priority) -> None:
        async def call() -> None:
            await self._sink.edit(shown.ref, body)

        if await self._mandatory(self._sink.edit_budgets, priority, call, "edit") is not None:
            shown.text, shown.sign = body, None
            self._observe(shown)
            self.stats.edits += 1
            self._last_edit = self._clock()

    async def _mandatory_post(
        self, body: str, priority: Priority, sign: Sign | None = None
    ) -> MessageRef | None:
        async def call() -> MessageRef:
            return await self._sink.post(body, sign=sign)

        result = await self._mandatory(self._sink.post_budgets, priority, call, "post")
        if result is not None:
            self.stats.posts += 1
            return result[0]
        return None

    async def _mandatory(
        self,
        budgets: Sequence[EditBudget],
        priority: Priority,
        call: Callable[[], Awaitable[T]],
        what: str,
    ) -> tuple[T] | None:
        """A call the reply cannot do without: wait for its turn, retry through 429s."""
        failures = limited = 0
        # A 429 only says "later": it does not count as a failure, but a storm is bounded.
        while failures < MANDATORY_ATTEMPTS and limited < MAX_RATE_LIMITED:
            try:
                async with spending(budgets, priority, fair_key=self._last_edit):
                    return (await call(),)
            except PlatformRateLimited as exc:
                limited += 1
                self.stats.rate_limited += 1
                _slow_down(budgets, exc.retry_after)
                await asyncio.sleep(exc.retry_after)
            except Exception:
                failures += 1
                self.stats.failed_calls += 1
                log.warning(f"{what}_failed", attempt=failures, exc_info=True)
                await asyncio.sleep(0.5 * failures)
        log.error(f"{what}_given_up", failures=failures, rate_limited=limited)
        return None

    async def _until(self, deadline: float, *, or_text: bool = False) -> None:
        """Sleep until `deadline` unless the stream ends first (or, with `or_text`, the
        first text comes)."""
        if not or_text:
            delay = deadline - self._clock()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._done.wait(), delay)
            return
        while not (self._done.is_set() or self._visible()):
            delay = deadline - self._clock()
            if delay <= 0:
                return
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), delay)

    def _settle(self) -> None:
        if not self._settled:
            self._settled = True
            lasted = self._clock() - self._started
            for budget in self._sink.edit_budgets:
                budget.settle(lasted)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _paired(text: str) -> str:
    """Surrogate halves that arrived apart, joined into their character, and lone ones
    replaced by U+FFFD as memory keeps them (a trailing high half waits for its partner)."""
    tail = text[-1:] if "\ud800" <= text[-1:] <= "\udbff" else ""
    body = text[: len(text) - len(tail)]
    joined = body.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return joined + tail


def _valid(text: str) -> str:
    """`text` with any lone surrogate replaced by U+FFFD (a database cannot store one)."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _text_or_sign(body: str, sign: Sign) -> tuple[str, Sign | None]:
    """(body, None) for text that shows something, else (the sign's text, the sign)."""
    return (sign.text, sign) if is_blank(body) else (body, None)


def _slow_down(budgets: Sequence[EditBudget], retry_after: float) -> None:
    """A 429: stop every reply in the scope, not just this one, until the platform says.

    The narrowest scope is the likeliest to have run out; a sink that knows better (Discord
    flags a global limit) pauses the wider one itself.
    """
    if budgets:
        budgets[0].pause(retry_after)
