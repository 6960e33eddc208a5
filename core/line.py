"""The line: at most `limit` upstream streams at once; every other turn waits its turn.

Over the cap a turn is not refused: it waits in one fair line — arrival order across
conversations (a conversation's own turns already come one at a time) — and its reply
shows where it stands. A turn the model server sent back ("429, come back in 2 s") keeps
its place number, so it goes ahead of everyone who arrived after it.

The cap adapts to the model server (additive increase, multiplicative decrease): it halves
when the server answers 429/503, and shrinks by a tenth when the time to the first token
climbs far above its usual level; it grows back by one for each stream that starts well
while the cap is in use. `ceiling` (PARLEY_MAX_CONCURRENT_STREAMS) is never exceeded.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from core import metrics

DECREASE = 0.5  # the cap after a 429/503, as a share of what it was
SLOW_DECREASE = 0.9  # the cap after a slow first token
CALM_SECONDS = 1.0  # after a decrease, overload signals of streams already in flight are one event
SLOW_FACTOR = 3.0  # a first token this many times its baseline is slow ...
SLOW_MARGIN = 2.0  # ... and at least this many seconds above it (noise on fast servers is not)
RECENT_WEIGHT = 0.2  # of one sample in the recent time-to-first-token average
BASELINE_RISE = 0.01  # how fast the baseline follows first tokens slower than it
WAIT_REPORT_SECONDS = 5.0  # how often a waiting turn is told its place anew


class LineClosed(Exception):
    """parley is stopping: nobody else gets a slot."""


class LineTimeout(Exception):
    """The turn's deadline passed while it waited."""


@dataclass(order=True)
class _Waiter:
    place: int
    future: asyncio.Future[None] = field(compare=False)


class Line:
    """Upstream stream slots, handed out in arrival order under an adaptive cap."""

    def __init__(
        self,
        *,
        ceiling: int,
        max_queued: int,
        floor: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= floor <= ceiling or max_queued < 0:
            raise ValueError("a Line needs 1 <= floor <= ceiling and max_queued >= 0")
        self.ceiling = ceiling
        self.floor = floor
        self.max_queued = max_queued
        self._clock = clock
        self._limit = float(ceiling)
        self._active = 0
        self._waiting: list[_Waiter] = []  # a heap by place; cancelled waiters are skipped
        self._queued = 0  # live waiters in the heap
        self._places = itertools.count()
        self._calm_until = 0.0
        self._baseline: float | None = None  # the usual time to a first token
        self._recent: float | None = None
        self._closed = False
        self._publish()

    # -- what the engine reads ----------------------------------------------------------
    @property
    def limit(self) -> int:
        """Streams allowed at once right now."""
        return max(self.floor, int(self._limit))

    @property
    def active(self) -> int:
        """Streams running now."""
        return self._active

    @property
    def queued(self) -> int:
        """Turns waiting for a slot."""
        return self._queued

    @property
    def full(self) -> bool:
        """Whether a new turn would find no room in the line (it is refused then)."""
        return self._queued >= self.max_queued and self._active >= self.limit

    def place(self) -> int:
        """A new turn's place number: lower numbers get slots first."""
        return next(self._places)

    # -- entering and leaving --------------------------------------------------------------
    async def enter(
        self, place: int, *, deadline: float, waiting: Callable[[int], None] | None = None
    ) -> None:
        """Take a slot, waiting in line when none is free; `waiting(ahead)` is told how many
        turns are ahead, at once and then every WAIT_REPORT_SECONDS.

        Raises LineTimeout when `deadline` (a `clock` time) passes first, LineClosed when
        parley is stopping. Every successful `enter` needs one `leave`."""
        if self._closed:
            raise LineClosed
        if self._active < self.limit and not self._ahead(place):
            self._start()
            return
        waiter = _Waiter(place, asyncio.get_running_loop().create_future())
        heapq.heappush(self._waiting, waiter)
        self._queued += 1
        self._publish()
        try:
            while True:
                if waiting is not None:
                    waiting(self._ahead(place))
                left = deadline - self._clock()
                if left <= 0:
                    raise LineTimeout
                done, _ = await asyncio.wait(
                    {waiter.future}, timeout=min(left, WAIT_REPORT_SECONDS)
                )
                if done:
                    waiter.future.result()  # raises LineClosed
                    return
        except BaseException:
            if waiter.future.done() and not waiter.future.cancelled():
                if waiter.future.exception() is None:
                    self.leave()  # granted just as the wait ended: pass the slot on
            else:
                waiter.future.cancel()
                self._queued -= 1
                self._publish()
            raise

    def leave(self) -> None:
        """A stream ended: its slot goes to the first in line."""
        self._active -= 1
        self._pump()

    def close(self) -> None:
        """parley is stopping: wake every waiting turn with LineClosed."""
        self._closed = True
        while self._waiting:
            waiter = heapq.heappop(self._waiting)
            if not waiter.future.done():
                waiter.future.set_exception(LineClosed())
        self._queued = 0
        self._publish()

    # -- what the model server tells us ----------------------------------------------------
    def overloaded(self) -> None:
        """The model server answered 429 or 503: halve the cap (once per calm period)."""
        self._decrease(DECREASE)

    def first_token(self, seconds: float) -> None:
        """A stream produced its first token after `seconds`: grow the cap back if that was
        healthy, shrink it when first tokens climb far above their baseline."""
        self._recent = (
            seconds
            if self._recent is None
            else self._recent + RECENT_WEIGHT * (seconds - self._recent)
        )
        if self._baseline is None or seconds < self._baseline:
            self._baseline = seconds
        else:
            self._baseline += BASELINE_RISE * (seconds - self._baseline)
        baseline = self._baseline
        if self._recent > max(SLOW_FACTOR * baseline, baseline + SLOW_MARGIN):
            self._decrease(SLOW_DECREASE)
        elif self._active * 2 >= self._limit and self._limit < self.ceiling:
            self._limit = min(float(self.ceiling), self._limit + 1)
            self._pump()

    # -- internals ---------------------------------------------------------------------
    def _decrease(self, factor: float) -> None:
        now = self._clock()
        if now < self._calm_until:
            return
        self._calm_until = now + CALM_SECONDS
        self._limit = max(float(self.floor), self._limit * factor)
        self._publish()

    def _ahead(self, place: int) -> int:
        return sum(1 for w in self._waiting if w.place < place and not w.future.done())

    def _start(self) -> None:
        self._active += 1
        self._publish()

    def _pump(self) -> None:
        while self._waiting and self._active < self.limit:
            waiter = heapq.heappop(self._waiting)
            if waiter.future.done():
                continue  # it gave up waiting
            self._queued -= 1
            self._active += 1
            waiter.future.set_result(None)
        self._publish()

    def _publish(self) -> None:
        metrics.STREAM_LIMIT.set(self.limit)
        metrics.ACTIVE_STREAMS.set(self._active)
        metrics.QUEUED_TURNS.set(self._queued)
