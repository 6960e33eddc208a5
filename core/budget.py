"""Shared edit budgets: one allowance per platform scope, handed out by priority.

Platforms limit edits per workspace, channel or bot — not per message — so every reply
streaming in a scope draws from one budget. Calls a reply cannot do without (its first
message, a message completed at the platform's size limit, its final text) are only
ordered, never held back. Optional calls (intermediate frames, a first text edited into a
placeholder) take a slot only while the scope keeps a free slot for every final that can
come due before the slot they take is back: a slot spent now returns one window later,
and by Little's law the live replies end at about `owed / typical duration` a second, so
`owed * window / typical` of them can end meanwhile (kept with three standard deviations
of chance on top, and one). On Slack's 60 s window that
is every live reply; on Discord's 1 s window a few, so frames keep flowing there — while
the budget has room: with more replies streaming than one window can end, frames leave
every final's slot (those replies, ending together, would each wait a window more
otherwise), and only first texts, which replace a sign, still go by the window's count.

The allowance is a sliding window — at most `calls` grants in any `per` seconds — rather
than a token bucket: a bucket that starts full lets `2 * calls` through in the first window,
which is exactly the burst a platform answers with 429.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

MARGIN = 0.02
"""Fraction of the window added to it: a granted call reaches the platform a little later
than the grant, and a late call must not land inside the platform's previous window."""
TYPICAL_REPLY_SECONDS = 10.0
"""How long a reply streams, until this scope has seen some end (then a running average)."""
DURATION_WEIGHT = 0.1  # of one reply's duration in that average


class Priority(enum.IntEnum):
    """Lower goes first."""

    FINAL = 0
    FIRST = 1
    FRAME = 2


@dataclass(order=True)
class _Waiter:
    priority: int
    optional: bool
    fair_key: float  # when this reply was last granted a slot: the longest-starved goes first
    seq: int
    future: asyncio.Future[float] = field(compare=False)


class EditBudget:
    """The allowance of one scope (a Slack workspace, a Discord channel, the Discord bot)."""

    def __init__(
        self,
        name: str,
        *,
        calls: int,
        per: float,
        reserve: int = 0,
    ) -> None:
        if calls <= 0 or per <= 0 or not 0 <= reserve < calls:
            raise ValueError("an EditBudget needs calls > 0, per > 0 and 0 <= reserve < calls")
        self.name = name
        self.calls = calls
        self.per = per
        # Slots optional calls never take: finals of replies that have not started yet
        # (turns queued behind their conversation) find room in a window frames emptied.
        self.reserve = reserve
        self._window = per * (1 + MARGIN)
        self._clock = time.monotonic
        self._stamps: deque[float] = deque()  # grant times inside the window, oldest first
        self._paused_until = 0.0
        self._owed = 0
        self._typical = TYPICAL_REPLY_SECONDS
        self._waiters: list[_Waiter] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self.granted = 0

    # -- the finals live replies owe ------------------------------------------------
    @property
    def owed(self) -> int:
        """Finals still owed by replies streaming in this scope."""
        return self._owed

    @property
    def waiting(self) -> int:
        """Calls waiting for a slot now."""
        return sum(1 for w in self._waiters if not w.future.done())

    def owe(self) -> None:
        """A reply started streaming here: keep a slot back for its final."""
        self._owed += 1

    def settle(self, lasted: float | None = None) -> None:
        """A reply no longer needs its final slot (sent, or given up) after streaming for
        `lasted` seconds (None: unknown)."""
        self._owed = max(0, self._owed - 1)
        if lasted is not None:
            self._typical += DURATION_WEIGHT * (max(0.0, lasted) - self._typical)
        self._pump()

    @property
    def crowded(self) -> bool:
        """More replies stream here than half the window's calls: their finals (and a few
        frames) no longer fit one window, so a new reply had better not stream here."""
        return self._owed > self.calls // 2

    @property
    def kept(self) -> int:
        """Slots a frame must leave free for finals: those of the live replies that can
        come due within one window (all of them when replies are shorter than the window),
        and every one while more replies stream than one window can end — the budget has
        no room for frames then: replies ending together would wait a window more."""
        return self._owed if self._owed > self.calls else self._due()

    def _due(self) -> int:
        """Finals of live replies that can come due before a slot spent now is back (the
        slots a first text edited into a sign must leave free: it is worth more than a
        frame, as the asker has seen nothing of the answer yet)."""
        owed = self._owed
        if owed == 0 or self._typical <= self.per:
            return owed
        expected = owed * self.per / self._typical
        # Replies end at random: keep enough for all but a bad window (3 sigma of Poisson).
        return min(owed, math.ceil(expected + 3 * math.sqrt(expected)) + 1)

    # -- slots ----------------------------------------------------------------------
    async def slot(
        self, priority: Priority, *, optional: bool = False, fair_key: float = 0.0
    ) -> None:
        """Wait for a slot. Cancelling the wait gives back a slot granted meanwhile."""
        await self._take(priority, optional, fair_key)

    def pause(self, seconds: float) -> None:
        """The platform answered 429 for this scope: nobody calls before it says so."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)
        self._pump()

    # -- internals ------------------------------------------------------------------
    async def _take(self, priority: Priority, optional: bool, fair_key: float) -> float:
        """Wait for a slot; returns its grant stamp (for `_give_back`)."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(int(priority), optional, fair_key, next(self._seq), loop.create_future())
        self._waiters.append(waiter)
        self._waiters.sort()
        self._pump()
        try:
            return await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self._give_back(waiter.future.result())
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
                self._pump()
            raise

    def _give_back(self, stamp: float) -> None:
        """A granted slot was not used: free it for the next caller."""
        self.granted -= 1
        if stamp in self._stamps:  # else it has left the window already
            self._stamps.remove(stamp)
        self._pump()

    def _restamp(self, stamp: float) -> None:
        if stamp in self._stamps:  # else it has left the window already
            self._stamps.remove(stamp)
            self._stamps.append(self._clock())  # the newest stamp: the deque stays sorted

    def _free(self, now: float) -> int:
        while self._stamps and self._stamps[0] <= now - self._window:
            self._stamps.popleft()
        return self.calls - len(self._stamps)

    def _need(self, waiter: _Waiter) -> int:
        # An optional call must leave the slots kept for finals, and the reserve.
        if not waiter.optional:
            return 1
        keep = self._due() if waiter.priority == Priority.FIRST else self.kept
        return 1 + keep + self.reserve

    def _pump(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = self._clock()
        free = self._free(now)
        while self._waiters and now >= self._paused_until:
            head = self._waiters[0]
            if head.future.done():  # cancelled by its owner
                self._waiters.pop(0)
                continue
            if free < self._need(head):
                break
            self._waiters.pop(0)
            self._stamps.append(now)
            free -= 1
            self.granted += 1
            head.future.set_result(now)
        self._schedule(now)

    def _schedule(self, now: float) -> None:
        if not self._waiters:
            return
        need = self._need(self._waiters[0])
        if need > self.calls:
            return  # only a settled final can make room: settle() pumps again
        # The slot that must leave the window before `need` slots are free.
        blocking = len(self._stamps) - (self.calls - need)
        freed_at = self._stamps[blocking - 1] + self._window if blocking > 0 else now
        delay = max(freed_at - now, self._paused_until - now, 0.0)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(delay + 1e-4, self._pump)


Lease = tuple[EditBudget, float]
"""A slot taken in one scope: the budget and the time it was granted."""


async def take_slots(
    budgets: Sequence[EditBudget],
    priority: Priority,
    *,
    optional: bool = False,
    fair_key: float = 0.0,
) -> list[Lease]:
    """Take one slot in each scope a call counts against, narrowest scope first.

    Cancelled half-way (a frame the final overtook), it gives back the slots it holds.
    Hand the result to `used()` once the call is over.
    """
    held: list[Lease] = []
    try:
        for budget in budgets:
            held.append((budget, await budget._take(priority, optional, fair_key)))
    except asyncio.CancelledError:
        for budget, stamp in held:
            budget._give_back(stamp)
        raise
    return held


def used(leases: Sequence[Lease]) -> None:
    """The call is over: count its slots from now, not from when they were granted.

    The platform counts a call when it arrives, which under load can be well after the
    grant; counting from the end keeps the window honest, so no 429 comes back."""
    for budget, stamp in leases:
        budget._restamp(stamp)


@contextlib.asynccontextmanager
async def spending(
    budgets: Sequence[EditBudget], priority: Priority, *, fair_key: float = 0.0
) -> AsyncIterator[None]:
    """`async with spending(budgets, priority): await the_call()`."""
    leases = await take_slots(budgets, priority, fair_key=fair_key)
    try:
        yield
    finally:
        used(leases)
