"""Every way the model server fails, and a database locked by another writer, through the real
front doors: the person sees a clear sentence in the platform message, nothing already said is
lost from memory, and the next message in the same channel is answered."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from tests.faults.conftest import Chat, OpenChat
from tests.fakes.upstream import DEFAULT_TEXT, FakeUpstream, Script

PLATFORMS = ["slack", "discord"]
PARTIAL = DEFAULT_TEXT[:8]  # two 4-character chunks come before a mid-stream fault
STORAGE_SENTENCE = "couldn't read or save this conversation's memory"

FAULTS = [
    pytest.param(None, "can't reach the model server", "", id="connection-refused"),
    pytest.param(Script(fault="hang"), "took too long", "", id="hang-before-first-token"),
    pytest.param(Script(fault="hang_mid"), "took too long", PARTIAL, id="hang-mid-stream"),
    pytest.param(Script(fault="drop_mid"), "cut off", PARTIAL, id="drop-mid-stream"),
    pytest.param(Script(status=401), "rejected parley's API key", "", id="401"),
    pytest.param(Script(status=404), "doesn't know this model", "", id="404"),
    pytest.param(Script(status=429, retry_after=7), "try again in about 7 seconds", "", id="429"),
    pytest.param(Script(status=500), "server error", "", id="500"),
    pytest.param(Script(fault="malformed"), "cut off", PARTIAL, id="malformed-sse"),
]


def sent_to_model(upstream: FakeUpstream) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in upstream.requests[-1]["body"]["messages"]]


async def next_turn_works(chat: Chat, upstream: FakeUpstream, *, before: int) -> None:
    """The next message in the channel is answered and remembered after the `before` rows."""
    upstream.script(Script(text="All good now."))
    again = await chat.ask("again?")
    await chat.answered()
    await chat.until(lambda: again() == "All good now.")
    assert chat.rows()[before:] == [
        ("user", "again?", "complete"),
        ("assistant", "All good now.", "complete"),
    ]


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize(("script", "says", "partial"), FAULTS)
async def test_an_upstream_fault_is_a_sentence_loses_nothing_and_the_next_turn_works(
    open_chat: OpenChat,
    upstream: FakeUpstream,
    platform: str,
    script: Script | None,
    says: str,
    partial: str,
) -> None:
    chat = await open_chat(platform)
    if script is None:
        await upstream.stop()  # nothing listens on its port any more: connection refused
    else:
        upstream.script(script)

    shown = await chat.ask("hello?")
    await chat.answered()
    await chat.until(lambda: says in shown())
    if partial:
        assert shown().startswith(partial)  # what had streamed stays on screen
    else:
        assert DEFAULT_TEXT[:4] not in shown()
    assert chat.rows() == [
        ("user", "hello?", "complete"),
        ("assistant", partial, "partial" if partial else "failed"),
    ]

    if script is None:
        await upstream.start()  # back on the same port
    await next_turn_works(chat, upstream, before=2)
    remembered = sent_to_model(upstream)
    assert ("user", "hello?") in remembered
    if partial:
        assert ("assistant", partial) in remembered


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_a_lock_held_for_a_second_delays_the_turn_until_it_goes(
    open_chat: OpenChat, upstream: FakeUpstream, platform: str
) -> None:
    chat = await open_chat(platform)  # busy_timeout 5 s, as parley runs
    other = sqlite3.connect(chat.stack.database, isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN EXCLUSIVE")  # another writer holds the database...
        shown = await chat.ask("are you there?")
        await _hold(1.0)  # ...for a second, while the turn waits to save the message
        assert chat.engine.active_turns == 1  # the turn arrived and is waiting for the lock
        assert upstream.requests == []  # the model is asked only once the message is saved
        released = time.monotonic()
    finally:
        other.execute("ROLLBACK")
        other.close()
    await chat.answered(timeout=8)
    await chat.until(lambda: shown() == DEFAULT_TEXT)
    assert upstream.requests[0]["received_at"] >= released
    assert chat.rows() == [
        ("user", "are you there?", "complete"),
        ("assistant", DEFAULT_TEXT, "complete"),
    ]
    await next_turn_works(chat, upstream, before=2)


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_a_lock_held_past_the_busy_timeout_is_the_storage_sentence(
    open_chat: OpenChat, upstream: FakeUpstream, platform: str
) -> None:
    chat = await open_chat(platform, busy_timeout_ms=300)
    other = sqlite3.connect(chat.stack.database, isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN EXCLUSIVE")
        shown = await chat.ask("are you there?")
        await chat.answered()
        await chat.until(lambda: STORAGE_SENTENCE in shown())
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert upstream.requests == []  # nothing was asked with a message that could not be kept
    assert chat.rows() == []
    await next_turn_works(chat, upstream, before=0)


async def _hold(seconds: float) -> None:
    """The fault's duration (a lock held this long), not a synchronisation."""
    await asyncio.sleep(seconds)
