"""An in-memory ReplySink for core tests: records every call with its time.

It can enforce a platform-like limit of its own (`limit_calls` per `limit_window` seconds,
answering PlatformRateLimited past it), so tests can tell whether the engine's budgets
kept a reply inside the platform's limits.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.budget import EditBudget
from core.errors import PlatformRateLimited
from core.sink import Sign


@dataclass
class Call:
    kind: str  # "post" | "edit" | "notice"
    ref: int
    text: str
    at: float


@dataclass
class SharedLimit:
    """A platform's real limit for one scope, shared by several sinks (e.g. a workspace)."""

    calls: int
    window: float
    stamps: deque[float] = field(default_factory=deque)
    overruns: int = 0

    def hit(self, now: float) -> float:
        while self.stamps and now - self.stamps[0] >= self.window:
            self.stamps.popleft()
        if len(self.stamps) >= self.calls:
            self.overruns += 1
            return self.window - (now - self.stamps[0])
        self.stamps.append(now)
        return 0.0


class RecordingSink:
    """Records posts and edits; `messages` holds each message's current text."""

    def __init__(
        self,
        *,
        max_chars: int = 2000,
        flush_interval: float | None = None,
        post_budgets: Sequence[EditBudget] = (),
        edit_budgets: Sequence[EditBudget] = (),
        edit_limit: SharedLimit | None = None,
        call_delay: float = 0.0,
    ) -> None:
        self.max_chars = max_chars
        self.inline_notes = True
        self.aside: Callable[[str], Awaitable[None]] | None = None  # a test may give one
        self.result: Any = None  # the engine's TurnResult, set by tests that keep it
        self.flush_interval = flush_interval
        self.post_budgets = post_budgets
        self.edit_budgets = edit_budgets
        self.edit_limit = edit_limit
        self.call_delay = call_delay
        self.calls: list[Call] = []
        self.rejected: list[Call] = []  # edits the "platform" refused (429 or error)
        self.messages: list[str] = []
        self.notices: list[str] = []
        self.announcements: list[str] = []
        self.fail_next_edits = 0
        self.rate_limit_next_edits: list[float] = []
        self._grew = asyncio.Event()

    async def post(self, text: str, *, sign: Sign | None = None) -> int:
        if self.call_delay:
            await asyncio.sleep(self.call_delay)
        self.messages.append(text)
        ref = len(self.messages) - 1
        self._record(Call("post", ref, text, time.monotonic()))
        return ref

    async def edit(self, ref: int, text: str, *, sign: Sign | None = None) -> None:
        if self.call_delay:
            await asyncio.sleep(self.call_delay)
        if self.rate_limit_next_edits:
            self._reject(ref, text)
            raise PlatformRateLimited(self.rate_limit_next_edits.pop(0))
        if self.fail_next_edits:
            self.fail_next_edits -= 1
            self._reject(ref, text)
            raise RuntimeError("platform error")
        if self.edit_limit is not None:
            wait = self.edit_limit.hit(time.monotonic())
            if wait:
                self._reject(ref, text)
                raise PlatformRateLimited(wait)
        self.messages[ref] = text
        self._record(Call("edit", ref, text, time.monotonic()))

    def describe(self, ref: int) -> str:
        return str(ref)

    async def notice(self, text: str) -> None:
        self.notices.append(text)
        self._record(Call("notice", -1, text, time.monotonic()))

    async def announce(self, text: str) -> None:
        self.announcements.append(text)
        self._record(Call("announce", -1, text, time.monotonic()))

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        self._grew.set()

    def _reject(self, ref: int, text: str) -> None:
        self.rejected.append(Call("edit", ref, text, time.monotonic()))
        self._grew.set()

    async def until(self, condition: Callable[[], bool], *, timeout: float = 2.0) -> None:
        """Wait (at most `timeout` seconds) until `condition()` holds after some call."""
        async with asyncio.timeout(timeout):
            while not condition():
                self._grew.clear()
                await self._grew.wait()

    # -- views for assertions ----------------------------------------------------------
    def of(self, kind: str) -> list[Call]:
        return [c for c in self.calls if c.kind == kind]

    @property
    def shown(self) -> str:
        """Everything the reply's messages show now, joined."""
        return "".join(self.messages)
