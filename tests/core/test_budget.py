"""EditBudget: the shared per-scope allowance every streaming reply draws its edits from.

What a user notices: finals land first when the budget is tight, frames never eat the slot a
final needs, replies take turns, a platform's "slow down" stops everyone, and the platform's
limit is never exceeded (so it never answers 429).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from core.budget import EditBudget, Priority, take_slots, used
from tests.support.engine import eventually

LONG = 60.0  # a window no test outlives: spent slots stay spent


async def granted_within(task: asyncio.Future[None], seconds: float) -> bool:
    """Whether `task` finishes within `seconds` (a bounded wait, not a sleep)."""
    done, _ = await asyncio.wait({task}, timeout=seconds)
    return task in done


async def spend(budget: EditBudget, count: int) -> None:
    for _ in range(count):
        await asyncio.wait_for(budget.slot(Priority.FINAL), 1.0)


def slot_task(
    budget: EditBudget,
    priority: Priority,
    *,
    optional: bool = False,
    fair_key: float = 0.0,
    order: list[str] | None = None,
    label: str = "",
) -> asyncio.Task[None]:
    async def wait() -> None:
        await budget.slot(priority, optional=optional, fair_key=fair_key)
        if order is not None:
            order.append(label)

    return asyncio.create_task(wait())


async def test_a_free_budget_grants_at_once() -> None:
    budget = EditBudget("workspace", calls=3, per=LONG)
    await spend(budget, 3)
    assert budget.granted == 3


def test_a_budget_needs_calls_and_a_window() -> None:
    with pytest.raises(ValueError):
        EditBudget("workspace", calls=0, per=1.0)
    with pytest.raises(ValueError):
        EditBudget("workspace", calls=1, per=0)


async def test_when_slots_are_scarce_finals_go_before_first_texts_before_frames() -> None:
    budget = EditBudget("channel", calls=1, per=0.1)
    await spend(budget, 1)
    order: list[str] = []
    tasks = [
        slot_task(budget, Priority.FRAME, optional=True, order=order, label="frame"),
        slot_task(budget, Priority.FIRST, order=order, label="first"),
        slot_task(budget, Priority.FINAL, order=order, label="final"),
    ]
    await asyncio.wait_for(asyncio.gather(*tasks), 2.0)
    assert order == ["final", "first", "frame"]


async def test_an_optional_call_waits_while_the_slots_left_are_owed_to_finals() -> None:
    budget = EditBudget("workspace", calls=2, per=LONG)
    budget.owe()
    budget.owe()  # two replies streaming: both slots are promised to their finals
    frame = slot_task(budget, Priority.FRAME, optional=True)
    first_edit = slot_task(budget, Priority.FIRST, optional=True)
    assert not await granted_within(frame, 0.05)
    assert not first_edit.done()

    # A final is never held back, even though it spends a slot another final was promised.
    await asyncio.wait_for(budget.slot(Priority.FINAL), 1.0)
    budget.settle()  # that reply is done: one slot left, one final owed
    assert not await granted_within(frame, 0.05)

    budget.settle()  # the other reply gave up its final: the slot is free for optional calls
    assert await granted_within(first_edit, 1.0)
    assert not frame.done()  # the one slot went to the first text, which outranks a frame
    frame.cancel()


async def test_frames_leave_the_reserve_for_replies_that_have_not_started() -> None:
    budget = EditBudget("workspace", calls=10, per=LONG, reserve=2)
    budget.owe()  # one reply streaming: it may take frames down to owed + reserve
    frames = 0
    while await granted_within(frame := slot_task(budget, Priority.FRAME, optional=True), 0.05):
        frames += 1
    frame.cancel()
    assert frames == 10 - 1 - 2
    # The reserve is still there for the final and for a reply that starts later.
    await asyncio.wait_for(budget.slot(Priority.FINAL), 1.0)
    budget.settle()
    await asyncio.wait_for(budget.slot(Priority.FIRST), 1.0)
    await asyncio.wait_for(budget.slot(Priority.FINAL), 1.0)


async def frames_granted(budget: EditBudget) -> int:
    """How many optional frames the budget grants now, before one has to wait."""
    granted = 0
    while await granted_within(frame := slot_task(budget, Priority.FRAME, optional=True), 0.02):
        granted += 1
    frame.cancel()
    return granted


async def test_on_a_window_shorter_than_a_reply_frames_flow_while_finals_are_owed() -> None:
    # Discord's bot: 50 a second, 50 replies streaming for about ten seconds each. Only the
    # finals that can come due before a slot spent now is back are kept: ~50 * 1 / 10 = 5,
    # plus three standard deviations of chance (~7) and one; keeping all 50 would leave
    # frames none at all.
    budget = EditBudget("bot", calls=50, per=LONG / 60)  # one second
    for _ in range(50):
        budget.owe()
    assert budget.kept == 13
    assert await frames_granted(budget) == 50 - 13
    finals = [slot_task(budget, Priority.FINAL) for _ in range(13)]
    assert await granted_within(asyncio.gather(*finals), 1.0)  # kept slots went to finals


async def test_with_more_replies_than_one_window_can_end_every_final_is_kept() -> None:
    budget = EditBudget("bot", calls=50, per=1.0, reserve=10)
    for _ in range(51):  # more finals than the window holds
        budget.owe()
    assert budget.kept == 51 and await frames_granted(budget) == 0
    # A first text replacing a sign still goes: ~51 * 1 / 10 + 1 finals can come due first.
    first = slot_task(budget, Priority.FIRST, optional=True)
    assert await granted_within(first, 1.0)


async def test_when_replies_are_shorter_than_the_window_every_final_is_kept() -> None:
    budget = EditBudget("workspace", calls=50, per=LONG)  # Slack: 50 a minute
    for _ in range(30):
        budget.owe()
    assert budget.kept == 30 and await frames_granted(budget) == 20


async def test_the_typical_reply_length_is_learned_from_the_replies_that_ended() -> None:
    budget = EditBudget("bot", calls=50, per=1.0)
    for _ in range(41):
        budget.owe()
    kept_before = budget.kept
    for _ in range(40):
        budget.settle(lasted=2.0)  # short replies end often: more finals come due per window
    for _ in range(40):
        budget.owe()
    assert budget.kept > kept_before


def test_the_reserve_must_leave_room_for_calls() -> None:
    with pytest.raises(ValueError):
        EditBudget("workspace", calls=5, per=1.0, reserve=5)


async def test_settling_more_than_was_owed_does_not_go_negative() -> None:
    budget = EditBudget("workspace", calls=1, per=LONG)
    budget.settle()
    budget.owe()
    assert budget.owed == 1
    frame = slot_task(budget, Priority.FRAME, optional=True)
    assert not await granted_within(frame, 0.05)
    frame.cancel()


async def test_among_waiting_frames_the_longest_starved_reply_goes_first() -> None:
    budget = EditBudget("workspace", calls=1, per=0.1)
    await spend(budget, 1)
    order: list[str] = []
    tasks = [
        slot_task(budget, Priority.FRAME, optional=True, fair_key=k, order=order, label=name)
        for name, k in [("recent", 30.0), ("oldest", 10.0), ("middle", 20.0)]
    ]
    await asyncio.wait_for(asyncio.gather(*tasks), 2.0)
    assert order == ["oldest", "middle", "recent"]


async def test_pause_blocks_every_caller_until_it_ends() -> None:
    budget = EditBudget("workspace", calls=5, per=LONG)
    started = time.monotonic()
    budget.pause(0.3)
    waiting = [
        slot_task(budget, Priority.FINAL),
        slot_task(budget, Priority.FIRST),
        slot_task(budget, Priority.FRAME, optional=True),
    ]
    assert not await granted_within(waiting[0], 0.1)
    assert not any(t.done() for t in waiting)
    await asyncio.wait_for(asyncio.gather(*waiting), 2.0)
    assert time.monotonic() - started >= 0.29


async def test_a_cancelled_wait_gives_its_place_up() -> None:
    budget = EditBudget("workspace", calls=1, per=0.1)
    await spend(budget, 1)
    final = slot_task(budget, Priority.FINAL)
    frame = slot_task(budget, Priority.FRAME, optional=True)
    assert not await granted_within(final, 0.02)
    final.cancel()
    assert await granted_within(frame, 1.0)
    assert budget.granted == 2


async def test_a_slot_granted_to_a_caller_that_is_cancelled_is_given_back() -> None:
    budget = EditBudget("workspace", calls=2, per=LONG)
    budget.owe()
    await spend(budget, 1)  # one slot left, owed to the streaming reply's final
    frame = slot_task(budget, Priority.FRAME, optional=True)
    assert not await granted_within(frame, 0.05)
    budget.settle()  # grants the frame its slot now...
    frame.cancel()  # ...but its reply stops before it could use it
    await asyncio.gather(frame, return_exceptions=True)
    # The slot came back: the next call needs no refill to go.
    await asyncio.wait_for(budget.slot(Priority.FINAL), 1.0)


async def test_a_call_cancelled_in_a_wider_scope_gives_back_the_narrower_slot() -> None:
    channel = EditBudget("channel", calls=1, per=LONG)
    bot = EditBudget("bot", calls=1, per=LONG)
    await spend(bot, 1)
    call = asyncio.create_task(take_slots([channel, bot], Priority.FRAME, optional=True))
    assert not await granted_within(call, 0.05)  # holds the channel slot, waits for the bot
    call.cancel()
    await asyncio.gather(call, return_exceptions=True)
    await asyncio.wait_for(channel.slot(Priority.FINAL), 1.0)


async def test_slots_come_back_at_calls_per_window_and_never_exceed_it() -> None:
    calls, per = 5, 0.25
    budget = EditBudget("workspace", calls=calls, per=per)
    grants: list[float] = []

    async def take() -> None:
        await budget.slot(Priority.FINAL)
        grants.append(time.monotonic())

    takers = [asyncio.create_task(take()) for _ in range(3 * calls)]
    await eventually(lambda: budget.granted + budget.waiting == 3 * calls)  # all have asked
    # A fresh budget lets a burst through at once; the next slots wait for the window to move.
    assert (budget.granted, budget.waiting) == (calls, 2 * calls)
    async with asyncio.timeout(5):
        await asyncio.gather(*takers)
    # The platform's law: never more than `calls` in any window of `per` seconds.
    for i in range(len(grants) - calls):
        assert grants[i + calls] - grants[i] >= per * 0.95


async def test_a_slow_call_is_counted_from_when_it_ended() -> None:
    # The platform counts a call when it arrives; a call that took long to get there must
    # not let the next one in a window too early.
    budget = EditBudget("channel", calls=1, per=0.2)
    started = time.monotonic()
    leases = await take_slots([budget], Priority.FINAL)
    await asyncio.sleep(0.15)  # the call itself, slow under load (this IS the input)
    used(leases)
    ended = time.monotonic()
    await asyncio.wait_for(budget.slot(Priority.FINAL), 2.0)
    assert time.monotonic() - ended >= 0.2 - 0.01
    assert time.monotonic() - started >= 0.35 - 0.01
