"""The database locked by another writer (a backup, a second tool, a stuck process), through
the real front doors: a short lock only delays the turn; a lock past the busy timeout is a
clear sentence; either way the next message works, and nothing shown is taken back later."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from core.engine import Engine
from core.transcript import CRASH_NOTE
from tests.fakes.upstream import DEFAULT_TEXT, FakeUpstream, Script
from tests.faults.conftest import (
    SLACK_CHANNEL,
    Chat,
    OpenChat,
    Stack,
    next_turn_works,
)

PLATFORMS = ["slack", "discord"]
STORAGE_SENTENCE = "couldn't read or save this conversation's memory"
SLOW = "An answer that streams for a while, so the database can lock under it. " * 8


@contextmanager
def other_writer(database: Path) -> Iterator[sqlite3.Connection]:
    """Another process's connection to the same file (closed, lock released, on exit)."""
    other = sqlite3.connect(database, isolation_level=None, timeout=5, check_same_thread=False)
    try:
        yield other
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()


class Saves:
    """Signals when the engine begins saving a turn's messages, and when that save returns."""

    def __init__(self, engine: Engine) -> None:
        self.began = asyncio.Event()
        self.returned = asyncio.Event()
        store: Any = engine.store
        append_all = store.append_all

        async def recorded(*args: Any, **kwargs: Any) -> Any:
            self.began.set()
            try:
                return await append_all(*args, **kwargs)
            finally:
                self.returned.set()

        store.append_all = recorded


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_a_lock_held_for_a_second_delays_the_turn_until_it_goes(
    open_chat: OpenChat, upstream: FakeUpstream, platform: str
) -> None:
    chat = await open_chat(platform)  # busy_timeout 5 s, as parley runs
    saves = Saves(chat.engine)
    with other_writer(chat.stack.database) as other:
        await asyncio.to_thread(other.execute, "BEGIN EXCLUSIVE")  # another writer holds it...
        shown = await chat.ask("are you there?")
        async with asyncio.timeout(5):
            await saves.began.wait()  # the turn arrived and is saving the message
        # ...and holds it a second more: the fault's duration, not a synchronisation.
        await asyncio.sleep(1.0)
        assert not saves.returned.is_set()  # the save waits for the lock
        assert chat.engine.active_turns == 1
        assert upstream.requests == []  # the model is asked only once the message is saved
        released = time.monotonic()
    await chat.answered(timeout=8)
    await chat.until(lambda: shown() == DEFAULT_TEXT)
    assert upstream.requests[0]["received_at"] >= released
    assert chat.rows() == [
        ("user", "are you there?", "complete"),
        ("assistant", DEFAULT_TEXT, "complete"),
    ]
    await next_turn_works(chat, upstream)


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_a_lock_held_past_the_busy_timeout_is_the_storage_sentence(
    open_chat: OpenChat, upstream: FakeUpstream, platform: str
) -> None:
    chat = await open_chat(platform, busy_timeout_ms=300)
    with other_writer(chat.stack.database) as other:
        await asyncio.to_thread(other.execute, "BEGIN EXCLUSIVE")
        shown = await chat.ask("are you there?")
        await chat.answered()
        await chat.until(lambda: STORAGE_SENTENCE in shown())
    assert upstream.requests == []  # nothing was asked with a message that could not be kept
    assert chat.rows() == []
    await next_turn_works(chat, upstream)


class Checkpoints:
    """Signals each checkpoint the store has written (a streaming reply's text and place)."""

    def __init__(self, engine: Engine) -> None:
        self.written = 0
        self._changed = asyncio.Condition()
        store: Any = engine.store
        checkpoint = store.checkpoint

        async def recorded(*args: Any, **kwargs: Any) -> None:
            await checkpoint(*args, **kwargs)
            self.written += 1
            async with self._changed:
                self._changed.notify_all()

        store.checkpoint = recorded

    async def wait(self, count: int = 1, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.written >= count)


class Repairs:
    """What a restarted parley finds to repair on the platform, and when it is done."""

    def __init__(self, engine: Engine) -> None:
        self.found: list[Any] | None = None
        self.done = 0
        self._changed = asyncio.Condition()
        repairs, repaired = engine.repairs, engine.repaired

        async def recorded_repairs(platform: str) -> list[Any]:
            found = await repairs(platform)
            self.found = list(found)
            await self._notify()
            return found

        async def recorded_repaired(repair: Any) -> None:
            await repaired(repair)
            self.done += 1
            await self._notify()

        engine.repairs = recorded_repairs  # type: ignore[method-assign]
        engine.repaired = recorded_repaired  # type: ignore[method-assign]

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def settled(self, timeout: float = 5.0) -> None:
        """Wait until the front door looked for repairs and made every one it found."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(
                lambda: self.found is not None and self.done >= len(self.found)
            )


async def test_a_lock_when_the_reply_is_saved_never_takes_back_what_was_shown(
    stack: Stack, upstream: FakeUpstream
) -> None:
    engine = await stack.engine(busy_timeout_ms=300)
    checkpoints = Checkpoints(engine)
    await stack.slack_door(engine)
    chat = Chat("slack", stack, engine, SLACK_CHANNEL)
    upstream.script(Script(text=SLOW, chunk_chars=6, interval=0.02))
    shown = await chat.ask("tell me something")
    await checkpoints.wait()  # the reply is on screen and its place is saved

    with other_writer(stack.database) as other:
        await asyncio.to_thread(other.execute, "BEGIN EXCLUSIVE")  # waits out our own writer
        result = await chat.answered(timeout=10)  # the reply ends while the lock is held
        saved = other.execute("SELECT status FROM messages WHERE role = 'assistant'").fetchall()
    assert saved == [("streaming",)]  # so its final save met the lock
    assert result.reply == SLOW
    delivered = shown()
    assert delivered.startswith(SLOW)  # the person read the whole answer (today with NOT_SAVED)

    # parley restarts (`parley run` marks what a crash left streaming, then connects).
    await stack.shut(engine)
    restarted = await stack.engine()
    await restarted.store.mark_interrupted()  # type: ignore[attr-defined,unused-ignore]
    repairs = Repairs(restarted)
    await stack.slack_door(restarted)
    await repairs.settled()

    assert CRASH_NOTE not in shown()
    assert shown() == delivered  # nothing the person read is taken back
