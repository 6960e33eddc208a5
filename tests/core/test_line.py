"""The line: upstream slots in arrival order under a cap that adapts to the model server.

What a person notices: nobody is turned away while there is room to wait, people are served
in the order they asked, a wait that runs out says so, and a struggling model server gets
fewer requests at once until it recovers.
"""

from __future__ import annotations

import asyncio

import pytest

from core.line import CALM_SECONDS, Line, LineClosed, LineTimeout

LATER = 1e9  # a deadline no test reaches


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def entering(line: Line, place: int, order: list[int] | None = None) -> asyncio.Task[None]:
    async def enter() -> None:
        await line.enter(place, deadline=LATER)
        if order is not None:
            order.append(place)

    return asyncio.create_task(enter())


async def settled() -> None:
    """Let every task that can run, run (the line grants synchronously on leave)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_slots_up_to_the_cap_are_granted_at_once_and_the_rest_wait_in_order() -> None:
    line = Line(ceiling=2, max_queued=10)
    places = [line.place() for _ in range(5)]
    order: list[int] = []
    tasks = [entering(line, p, order) for p in places]
    await settled()
    assert order == places[:2] and line.active == 2 and line.queued == 3
    for expected in places[2:]:
        line.leave()
        await settled()
        assert order[-1] == expected
    await asyncio.gather(*tasks)
    assert line.queued == 0 and line.active == 2


async def test_a_turn_coming_back_keeps_its_place_ahead_of_later_arrivals() -> None:
    line = Line(ceiling=1, max_queued=10)
    early, late = line.place(), line.place()
    await line.enter(early, deadline=LATER)
    line.leave()  # e.g. the model server said "come back in a second"
    await line.enter(line.place(), deadline=LATER)  # someone else took the free slot
    order: list[int] = []
    tasks = [entering(line, late, order), entering(line, early, order)]
    await settled()
    line.leave()
    await settled()
    line.leave()
    await asyncio.gather(*tasks)
    assert order == [early, late]


async def test_a_waiting_turn_is_told_how_many_are_ahead() -> None:
    line = Line(ceiling=1, max_queued=10)
    await line.enter(line.place(), deadline=LATER)
    seen: dict[str, list[int]] = {"second": [], "third": []}
    second, third = line.place(), line.place()
    tasks = [
        asyncio.create_task(line.enter(second, deadline=LATER, waiting=seen["second"].append)),
        asyncio.create_task(line.enter(third, deadline=LATER, waiting=seen["third"].append)),
    ]
    await settled()
    assert seen == {"second": [0], "third": [1]}
    line.leave()
    line.leave()
    await asyncio.gather(*tasks)


async def test_a_wait_past_its_deadline_ends_and_loses_no_slot() -> None:
    clock = Clock()
    line = Line(ceiling=1, max_queued=10, clock=clock)
    await line.enter(line.place(), deadline=LATER)
    waiting = asyncio.create_task(line.enter(line.place(), deadline=0.0))
    with pytest.raises(LineTimeout):
        await asyncio.wait_for(waiting, 2.0)
    assert line.queued == 0
    line.leave()
    await asyncio.wait_for(line.enter(line.place(), deadline=LATER), 1.0)


async def test_a_cancelled_wait_leaves_the_line() -> None:
    line = Line(ceiling=1, max_queued=10)
    await line.enter(line.place(), deadline=LATER)
    gone = entering(line, line.place())
    stays = entering(line, line.place())
    await settled()
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    assert line.queued == 1
    line.leave()
    await asyncio.wait_for(stays, 1.0)


async def test_closing_the_line_wakes_everyone_waiting() -> None:
    line = Line(ceiling=1, max_queued=10)
    await line.enter(line.place(), deadline=LATER)
    waiting = entering(line, line.place())
    await settled()
    line.close()
    with pytest.raises(LineClosed):
        await asyncio.wait_for(waiting, 1.0)
    with pytest.raises(LineClosed):
        await line.enter(line.place(), deadline=LATER)


async def test_the_line_is_full_only_when_every_slot_and_every_place_is_taken() -> None:
    line = Line(ceiling=1, max_queued=1)
    assert not line.full
    await line.enter(line.place(), deadline=LATER)
    assert not line.full  # one may still wait
    waiting = entering(line, line.place())
    await settled()
    assert line.full
    line.leave()
    await waiting
    assert not line.full


async def test_an_overloaded_model_server_halves_the_cap_once_per_calm_period() -> None:
    clock = Clock()
    line = Line(ceiling=16, max_queued=10, clock=clock)
    line.overloaded()
    line.overloaded()  # the same burst of 429s
    assert line.limit == 8
    clock.now += CALM_SECONDS
    line.overloaded()
    assert line.limit == 4
    for _ in range(20):
        line.overloaded()
        clock.now += CALM_SECONDS
    assert line.limit == 1  # never below the floor


async def test_the_cap_grows_back_one_healthy_stream_at_a_time_while_it_is_used() -> None:
    clock = Clock()
    line = Line(ceiling=8, max_queued=10, clock=clock)
    line.overloaded()
    assert line.limit == 4
    line.first_token(0.2)  # idle: nothing to learn about more streams
    assert line.limit == 4
    for _ in range(4):  # half the ceiling in use: the cap may grow to the ceiling
        await line.enter(line.place(), deadline=LATER)
    for _ in range(10):
        line.first_token(0.2)
    assert line.limit == 8  # back to the ceiling, never past it


async def test_first_tokens_climbing_far_above_their_baseline_lower_the_cap() -> None:
    clock = Clock()
    line = Line(ceiling=100, max_queued=10, clock=clock)
    for _ in range(5):
        line.first_token(0.3)
    assert line.limit == 100
    for _ in range(10):
        line.first_token(12.0)  # a model server queueing our requests
        clock.now += CALM_SECONDS
    assert line.limit < 100


async def test_a_busy_event_loop_is_not_a_slow_model_server() -> None:
    line = Line(ceiling=100, max_queued=10)
    for _ in range(5):
        line.first_token(0.005)
    for _ in range(20):
        line.first_token(0.4)  # 80 times the baseline, but well under a second
    assert line.limit == 100
