"""The MemoryStore contract: what every store must do, the SQLite store and the in-memory
fake alike (the fake passing it is what lets engine tests trust the fake).

A store joins by one entry in BACKENDS: a function of the test's tmp_path returning a
Backend, whose `open()` gives an opened store on the same data each time (a reopened file,
a reconnected server) and whose `persists` says whether that data outlives `close()`.
A server store whose server is missing may call pytest.skip() in `open()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.errors import StorageError
from core.memory import MemoryStore
from core.model import (
    ChannelSettings,
    ConversationKey,
    MessageStatus,
    Role,
    StoredMessage,
)
from storage import sqlite
from tests.support.memory import InMemoryStore


@dataclass
class Backend:
    """How to open one kind of store on one test's data."""

    name: str
    persists: bool
    opened: list[MemoryStore] = field(default_factory=list)

    async def open(self) -> MemoryStore:
        store = await self._open()
        self.opened.append(store)
        return store

    async def _open(self) -> MemoryStore:
        raise NotImplementedError


@dataclass
class SqliteBackend(Backend):
    path: Path = Path("parley.db")

    async def _open(self) -> MemoryStore:
        return await sqlite.open_store(str(self.path), exclusive=True)


@dataclass
class MemoryBackend(Backend):
    async def _open(self) -> MemoryStore:
        store = InMemoryStore()  # a new process: nothing of the last one's memory
        await store.open()
        return store


BACKENDS: dict[str, Callable[[Path], Backend]] = {
    "sqlite": lambda tmp: SqliteBackend("sqlite", persists=True, path=tmp / "parley.db"),
    "memory": lambda tmp: MemoryBackend("memory", persists=False),
}


@pytest.fixture(params=sorted(BACKENDS))
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    made = BACKENDS[request.param](tmp_path)
    yield made
    for store in reversed(made.opened):
        await store.close()  # closing twice is harmless


@pytest.fixture
async def store(backend: Backend) -> MemoryStore:
    return await backend.open()


KEY = ConversationKey("slack", "T1", "C1")
OTHER = ConversationKey("slack", "T1", "C2")


def msg(
    content: str,
    *,
    tokens: int = 1,
    role: Role = Role.USER,
    status: MessageStatus = MessageStatus.COMPLETE,
    created_at: float = 1_700_000_000.0,
    request_id: str = "req",
) -> StoredMessage:
    return StoredMessage(
        role, content, tokens, status, author="U1", request_id=request_id, created_at=created_at
    )


def streaming(content: str = "") -> StoredMessage:
    return msg(content, tokens=0, role=Role.ASSISTANT, status=MessageStatus.STREAMING)


async def everything(store: MemoryStore, key: ConversationKey = KEY) -> list[str]:
    return [m.content for m in await store.window(key, messages=1000, token_budget=10**9)]


# --- appending and restarting -------------------------------------------------------------------


async def test_ids_increase_across_calls_and_conversations(store: MemoryStore) -> None:
    first = await store.append(KEY, msg("a"))
    batch = await store.append_all(KEY, [msg("b"), msg("c")])
    other = await store.append(OTHER, msg("d"))
    ids = [first, *batch, other]
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert await store.append_all(KEY, []) == []


async def test_a_message_round_trips_every_field(store: MemoryStore) -> None:
    sent = StoredMessage(
        Role.ASSISTANT,
        "Paris ✓\n```py\nx = 1\n```",
        7,
        MessageStatus.PARTIAL,
        author="U42",
        request_id="r-1",
        created_at=1_700_000_123.456789,
    )
    await store.append(KEY, sent)
    assert await store.window(KEY, messages=10, token_budget=100) == [sent]


async def test_an_appended_message_survives_a_restart(backend: Backend) -> None:
    if not backend.persists:
        pytest.skip(f"the {backend.name} store keeps nothing across a restart")
    store = await backend.open()
    await store.append_all(KEY, [msg("my name is Ada"), msg("noted", role=Role.ASSISTANT)])
    await store.save_settings(KEY, ChannelSettings(model="m1"))
    await store.close()

    again = await backend.open()
    assert await everything(again) == ["my name is Ada", "noted"]
    assert await again.settings(KEY) == ChannelSettings(model="m1")


async def test_concurrent_appends_all_land_with_distinct_ids(store: MemoryStore) -> None:
    keys = [ConversationKey("slack", "T1", f"C{i}") for i in range(20)]
    ids = await asyncio.gather(*(store.append(k, msg(f"hi {k.channel}")) for k in keys))
    assert len(set(ids)) == len(keys)
    for k in keys:
        assert await everything(store, k) == [f"hi {k.channel}"]


async def test_append_all_is_all_or_none(store: MemoryStore) -> None:
    await store.append(KEY, msg("before"))
    with pytest.raises(StorageError):
        await store.append_all(KEY, [msg("fine"), msg("broken", tokens=-1)])
    assert await everything(store) == ["before"]


# --- the context window -------------------------------------------------------------------------


async def test_window_is_the_newest_messages_oldest_first(store: MemoryStore) -> None:
    for i in range(6):
        await store.append(KEY, msg(f"m{i}"))
    window = await store.window(KEY, messages=4, token_budget=100)
    assert [m.content for m in window] == ["m2", "m3", "m4", "m5"]


async def test_window_token_budget_is_inclusive_and_stops_at_the_first_misfit(
    store: MemoryStore,
) -> None:
    # oldest ... newest: the newest are 3 then 4 then 2 tokens; the oldest (1) would fit
    # after a misfit, but the context must be a contiguous tail of the history.
    await store.append_all(
        KEY,
        [msg("one", tokens=1), msg("two", tokens=2), msg("four", tokens=4), msg("three", tokens=3)],
    )
    exact = await store.window(KEY, messages=10, token_budget=7)
    assert [m.content for m in exact] == ["four", "three"]  # 3 + 4 == 7 fits
    tail = await store.window(KEY, messages=10, token_budget=8)
    assert [m.content for m in tail] == ["four", "three"]  # "two" misfits; "one" not skipped to


async def test_window_keeps_the_newest_message_even_over_budget(store: MemoryStore) -> None:
    await store.append_all(KEY, [msg("small", tokens=1), msg("huge", tokens=500)])
    window = await store.window(KEY, messages=10, token_budget=10)
    assert [m.content for m in window] == ["huge"]


async def test_window_leaves_out_empty_rows_which_still_count(store: MemoryStore) -> None:
    await store.append_all(KEY, [msg("q1"), msg("a1", role=Role.ASSISTANT), msg("q2")])
    await store.append(KEY, streaming())  # a reply that has no text yet
    assert await everything(store) == ["q1", "a1", "q2"]
    # The empty row is among the newest 2 rows read, so only one message comes back.
    assert [m.content for m in await store.window(KEY, messages=2, token_budget=100)] == ["q2"]


async def test_window_of_nothing(store: MemoryStore) -> None:
    assert await store.window(KEY, messages=10, token_budget=100) == []  # never written
    await store.append(KEY, msg("hello"))
    assert await store.window(KEY, messages=0, token_budget=100) == []


# --- conversations, reset and settings -----------------------------------------------------------


async def test_conversations_are_isolated(store: MemoryStore) -> None:
    keys = [
        KEY,
        ConversationKey("discord", "T1", "C1"),  # same ids on another platform
        ConversationKey("slack", "T2", "C1"),  # same channel id in another workspace
        OTHER,
    ]
    for k in keys:
        await store.append(k, msg(f"said in {k}"))
    await store.save_settings(keys[1], ChannelSettings(model="other-model"))
    for k in keys:
        assert await everything(store, k) == [f"said in {k}"]
    assert await store.settings(KEY) == ChannelSettings()
    assert await store.reset(KEY) == 1
    for k in keys[1:]:
        assert await everything(store, k) == [f"said in {k}"]


async def test_reset_forgets_messages_counts_them_and_keeps_settings(store: MemoryStore) -> None:
    chosen = ChannelSettings(model="m1", system_prompt="Be brief.", memory=True)
    await store.save_settings(KEY, chosen)
    await store.append_all(KEY, [msg("q"), msg("a", role=Role.ASSISTANT), streaming()])
    assert await store.reset(KEY) == 3
    assert await everything(store) == []
    assert await store.settings(KEY) == chosen
    assert await store.reset(KEY) == 0
    assert await store.reset(ConversationKey("x", "never", "seen")) == 0
    await store.append(KEY, msg("fresh start"))
    assert await everything(store) == ["fresh start"]


async def test_settings_default_then_round_trip(store: MemoryStore) -> None:
    assert await store.settings(KEY) == ChannelSettings()  # never set
    await store.append(OTHER, msg("only messages"))
    assert await store.settings(OTHER) == ChannelSettings()  # a conversation, no settings
    await store.save_settings(KEY, ChannelSettings(model="m2", system_prompt="", memory=False))
    assert await store.settings(KEY) == ChannelSettings(model="m2", system_prompt="", memory=False)
    await store.save_settings(KEY, ChannelSettings(system_prompt="Speak French."))
    assert await store.settings(KEY) == ChannelSettings(system_prompt="Speak French.")


async def test_ids_are_not_reused_after_reset(store: MemoryStore) -> None:
    # A late finish() of a forgotten reply must not land on someone else's message.
    reply = (await store.append_all(KEY, [msg("q"), streaming()]))[1]
    await store.reset(KEY)
    newcomer = await store.append(OTHER, msg("someone else's question"))
    assert newcomer > reply


# --- a streamed reply: checkpoint, finish, crash ------------------------------------------------


async def test_finish_replaces_text_status_and_tokens_and_forgets_the_ref(
    store: MemoryStore,
) -> None:
    _, reply = await store.append_all(KEY, [msg("q"), streaming()])
    await store.checkpoint(reply, streaming("Par"), '{"ref": "1"}')
    done = msg("Paris.", tokens=3, role=Role.ASSISTANT, status=MessageStatus.PARTIAL)
    await store.finish(reply, done)
    [_, saved] = await store.window(KEY, messages=10, token_budget=100)
    assert (saved.content, saved.status, saved.tokens) == ("Paris.", MessageStatus.PARTIAL, 3)
    assert (saved.role, saved.request_id) == (Role.ASSISTANT, "req")
    assert await store.mark_interrupted() == 0  # it is no longer streaming


async def test_a_reply_finished_interrupted_is_not_dangling(store: MemoryStore) -> None:
    # A shutdown that interrupts a reply shows and stores it so itself: nothing to repair.
    _, reply = await store.append_all(KEY, [msg("q"), streaming()])
    await store.checkpoint(reply, streaming("Once"), '{"ref": "1"}')
    ended = msg("Once upon", role=Role.ASSISTANT, status=MessageStatus.INTERRUPTED)
    await store.finish(reply, ended)
    assert await store.dangling("slack") == []


async def test_finish_and_checkpoint_of_an_unknown_id_change_nothing(store: MemoryStore) -> None:
    [known] = await store.append_all(KEY, [msg("q")])
    await store.finish(known + 1000, msg("stray", role=Role.ASSISTANT))
    await store.checkpoint(known + 1000, streaming("stray"), "ref")
    await store.settle_dangling(known + 1000)
    assert await everything(store) == ["q"]


async def test_checkpoint_saves_a_streaming_reply_only(store: MemoryStore) -> None:
    question, reply = await store.append_all(KEY, [msg("q"), streaming()])
    await store.checkpoint(reply, streaming("Hello, wor"), "ref-1")
    await store.checkpoint(question, streaming("overwritten?"), "ref-2")  # complete: ignored
    window = await store.window(KEY, messages=10, token_budget=100)
    assert [(m.content, m.status) for m in window] == [
        ("q", MessageStatus.COMPLETE),
        ("Hello, wor", MessageStatus.STREAMING),
    ]
    await store.finish(reply, msg("Hello, world.", role=Role.ASSISTANT))
    await store.checkpoint(reply, streaming("late"), "ref-3")  # ended: ignored
    assert await everything(store) == ["q", "Hello, world."]


async def test_mark_interrupted_marks_only_streaming_replies(store: MemoryStore) -> None:
    await store.append_all(KEY, [msg("q1"), streaming("half an ans")])
    await store.append_all(OTHER, [msg("q2"), streaming(), msg("done", role=Role.ASSISTANT)])
    assert await store.mark_interrupted() == 2
    statuses = [m.status for m in await store.window(KEY, messages=10, token_budget=100)]
    assert statuses == [MessageStatus.COMPLETE, MessageStatus.INTERRUPTED]
    assert await store.mark_interrupted() == 0


async def test_dangling_replies_are_listed_per_platform_until_settled(store: MemoryStore) -> None:
    discord = ConversationKey("discord", "G1", "C9")
    _, first = await store.append_all(KEY, [msg("q"), streaming()])
    _, second = await store.append_all(OTHER, [msg("q"), streaming()])
    _, elsewhere = await store.append_all(discord, [msg("q"), streaming()])
    _, unshown = await store.append_all(KEY, [msg("q"), streaming()])  # never checkpointed
    await store.checkpoint(second, streaming("Second"), "ref-2")
    await store.checkpoint(first, streaming("First"), "ref-1")
    await store.checkpoint(elsewhere, streaming("Ailleurs"), "ref-3")
    assert await store.dangling("slack") == []  # still streaming: not a crash yet

    assert await store.mark_interrupted() == 4
    found = await store.dangling("slack")
    assert [(d.message_id, d.key, d.content, d.platform_ref) for d in found] == [
        (first, KEY, "First", "ref-1"),
        (second, OTHER, "Second", "ref-2"),
    ]
    assert unshown not in [d.message_id for d in found]
    await store.settle_dangling(first)
    assert [d.message_id for d in await store.dangling("slack")] == [second]
    assert [d.message_id for d in await store.dangling("discord")] == [elsewhere]


# --- retention ----------------------------------------------------------------------------------


async def test_prune_deletes_the_oldest_first_up_to_the_limit(store: MemoryStore) -> None:
    chosen = ChannelSettings(model="m1")
    await store.save_settings(KEY, chosen)
    # Appended out of time order: prune goes by age, not by id.
    await store.append_all(KEY, [msg("day3", created_at=3000.0), msg("day1", created_at=1000.0)])
    await store.append_all(OTHER, [msg("day2", created_at=2000.0), msg("day9", created_at=9000.0)])
    assert await store.prune(5000.0, limit=2) == 2
    assert await everything(store) == ["day3"]
    assert await everything(store, OTHER) == ["day9"]
    assert await store.prune(5000.0, limit=0) == 0
    assert await store.prune(5000.0, limit=10) == 1
    assert await store.prune(5000.0, limit=10) == 0  # nothing older is left
    assert await store.prune(3000.0, limit=10) == 0  # strictly older than
    assert await everything(store, OTHER) == ["day9"]
    assert await store.settings(KEY) == chosen


# --- health and lifecycle -----------------------------------------------------------------------


async def test_healthy_while_open_and_not_after_close(store: MemoryStore) -> None:
    assert await store.healthy() is True
    await store.append(KEY, msg("still healthy after a write"))
    assert await store.healthy() is True
    await store.close()
    assert await store.healthy() is False


async def test_a_closed_store_refuses_calls_with_runtime_error(store: MemoryStore) -> None:
    # core.transcript's save_later relies on RuntimeError for "the store closed meanwhile".
    [reply] = await store.append_all(KEY, [streaming()])
    await store.close()
    with pytest.raises(RuntimeError):
        await store.finish(reply, msg("too late", role=Role.ASSISTANT))
    with pytest.raises(RuntimeError):
        await store.window(KEY, messages=10, token_budget=100)
