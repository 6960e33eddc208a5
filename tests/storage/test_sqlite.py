"""SqliteStore against a real SQLite file: schema, window, settings, and group commit."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path

import pytest

from core.errors import ConfigError, StorageError
from core.model import ChannelSettings, ConversationKey, MessageStatus, Role, StoredMessage
from core.retention import DAY, prune_forever
from storage.sqlite.store import MIGRATIONS, SCHEMA_VERSION, WINDOW_SQL, SqliteStore
from tests.storage.conftest import MakeMessage
from tests.support.engine import eventually


def contents(messages: list[StoredMessage]) -> list[str]:
    return [m.content for m in messages]


async def fill(store: SqliteStore, key: ConversationKey, make: MakeMessage, n: int) -> list[int]:
    return [await store.append(key, make(f"m{i}")) for i in range(n)]


# --- schema and connection -------------------------------------------------------------------


async def test_open_migrates_an_empty_file(store: SqliteStore, raw: sqlite3.Connection) -> None:
    assert SCHEMA_VERSION == 4
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 4
    names = {row[0] for row in raw.execute("SELECT name FROM sqlite_master")}
    tables = {"conversations", "messages", "health"}
    indexes = {"messages_by_conversation", "messages_with_ref", "messages_by_time"}
    assert tables | indexes <= names


async def test_wal_mode_is_on_after_open(store: SqliteStore, raw: sqlite3.Connection) -> None:
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_reopen_is_a_no_op_and_data_survives(
    db_path: Path, key: ConversationKey, message: MakeMessage, raw: sqlite3.Connection
) -> None:
    first = SqliteStore(db_path)
    await first.open()
    await first.append(key, message("remember me"))
    await first.save_settings(key, ChannelSettings(model="m1"))
    await first.close()
    schema_before = raw.execute("PRAGMA schema_version").fetchone()[0]

    second = SqliteStore(db_path)
    await second.open()
    try:
        assert raw.execute("PRAGMA schema_version").fetchone()[0] == schema_before
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        window = await second.window(key, messages=10, token_budget=100)
        assert contents(window) == ["remember me"]
        assert (await second.settings(key)).model == "m1"
    finally:
        await second.close()


async def test_file_from_a_newer_parley_is_refused(db_path: Path, raw: sqlite3.Connection) -> None:
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store = SqliteStore(db_path)
    with pytest.raises(ConfigError) as caught:
        await store.open()
    assert "newer parley" in caught.value.user_message
    assert str(SCHEMA_VERSION + 1) in caught.value.user_message
    # The file was left untouched and unlocked.
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    raw.execute("BEGIN IMMEDIATE")
    raw.execute("ROLLBACK")


async def test_use_before_open_is_a_clear_error(
    db_path: Path, key: ConversationKey, message: MakeMessage
) -> None:
    store = SqliteStore(db_path)
    with pytest.raises(RuntimeError, match="open"):
        await store.append(key, message("too early"))
    with pytest.raises(RuntimeError, match="open"):
        await store.window(key, messages=1, token_budget=1)


# --- append and window -----------------------------------------------------------------------


async def test_window_is_oldest_first_and_limited_by_count(
    store: SqliteStore, key: ConversationKey, message: MakeMessage
) -> None:
    ids = await fill(store, key, message, 5)
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert contents(await store.window(key, messages=3, token_budget=1000)) == ["m2", "m3", "m4"]
    assert contents(await store.window(key, messages=50, token_budget=1000)) == [
        f"m{i}" for i in range(5)
    ]
    assert await store.window(key, messages=0, token_budget=1000) == []


async def test_window_is_limited_by_token_budget(
    store: SqliteStore, key: ConversationKey, message: MakeMessage
) -> None:
    for i, tokens in enumerate([10, 10, 10, 10]):
        await store.append(key, message(f"m{i}", tokens=tokens))
    assert contents(await store.window(key, messages=10, token_budget=25)) == ["m2", "m3"]
    assert contents(await store.window(key, messages=10, token_budget=30)) == ["m1", "m2", "m3"]


async def test_window_stops_at_the_first_message_that_does_not_fit(
    store: SqliteStore, key: ConversationKey, message: MakeMessage
) -> None:
    await store.append(key, message("small old", tokens=1))
    await store.append(key, message("huge", tokens=100))
    await store.append(key, message("newest", tokens=5))
    # "small old" would fit the budget, but skipping "huge" would leave a hole in the history.
    assert contents(await store.window(key, messages=10, token_budget=10)) == ["newest"]


async def test_window_keeps_the_newest_message_even_over_budget(
    store: SqliteStore, key: ConversationKey, message: MakeMessage
) -> None:
    await store.append(key, message("older", tokens=1))
    await store.append(key, message("long question", tokens=500))
    assert contents(await store.window(key, messages=10, token_budget=100)) == ["long question"]


async def test_window_skips_empty_messages(
    store: SqliteStore, key: ConversationKey, message: MakeMessage
) -> None:
    await store.append(key, message("question"))
    await store.append(key, message("", role=Role.ASSISTANT, status=MessageStatus.FAILED, tokens=0))
    await store.append(key, message("again"))
    assert contents(await store.window(key, messages=10, token_budget=100)) == [
        "question",
        "again",
    ]


async def test_window_round_trips_every_field(store: SqliteStore, key: ConversationKey) -> None:
    sent = StoredMessage(
        Role.ASSISTANT,
        "partial answer",
        7,
        MessageStatus.PARTIAL,
        author="parley",
        request_id="abc123",
        created_at=1_700_000_000.25,
    )
    await store.append(key, sent)
    [got] = await store.window(key, messages=1, token_budget=100)
    assert got == sent
    assert type(got.role) is Role and type(got.status) is MessageStatus


async def test_window_of_an_unknown_conversation_is_empty(
    store: SqliteStore, key: ConversationKey
) -> None:
    assert await store.window(key, messages=10, token_budget=100) == []


async def test_channels_do_not_leak_into_each_other(
    store: SqliteStore, key: ConversationKey, other_key: ConversationKey, message: MakeMessage
) -> None:
    await store.append(key, message("for C1"))
    await store.append(other_key, message("for C2"))
    elsewhere = ConversationKey("discord", "T1", "C1")  # same ids on another platform
    await store.append(elsewhere, message("for discord"))
    assert contents(await store.window(key, messages=10, token_budget=100)) == ["for C1"]
    assert contents(await store.window(other_key, messages=10, token_budget=100)) == ["for C2"]
    assert contents(await store.window(elsewhere, messages=10, token_budget=100)) == ["for discord"]


async def test_window_query_walks_the_index(
    store: SqliteStore,
    key: ConversationKey,
    other_key: ConversationKey,
    message: MakeMessage,
    raw: sqlite3.Connection,
) -> None:
    await fill(store, key, message, 20)
    await fill(store, other_key, message, 20)
    plan = " | ".join(
        row[3] for row in raw.execute(f"EXPLAIN QUERY PLAN {WINDOW_SQL}", ("a", "b", "c", 5))
    )
    assert "USING INDEX messages_by_conversation" in plan or (
        "USING COVERING INDEX messages_by_conversation" in plan
    ), plan
    assert "SCAN messages" not in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # ORDER BY id DESC comes from the index, no sort


# --- reset, settings, finish, mark_interrupted -----------------------------------------------


async def test_reset_deletes_only_that_channel_and_keeps_settings(
    store: SqliteStore, key: ConversationKey, other_key: ConversationKey, message: MakeMessage
) -> None:
    await store.save_settings(key, ChannelSettings(model="m1", memory=False))
    await fill(store, key, message, 3)
    await fill(store, other_key, message, 2)
    assert await store.reset(key) == 3
    assert await store.window(key, messages=10, token_budget=100) == []
    assert len(await store.window(other_key, messages=10, token_budget=100)) == 2
    assert await store.settings(key) == ChannelSettings(model="m1", memory=False)
    assert await store.reset(key) == 0
    await store.append(key, message("fresh start"))
    assert contents(await store.window(key, messages=10, token_budget=100)) == ["fresh start"]


async def test_reset_of_an_unknown_conversation_deletes_nothing(
    store: SqliteStore, key: ConversationKey
) -> None:
    assert await store.reset(key) == 0


async def test_settings_round_trip(
    store: SqliteStore, key: ConversationKey, other_key: ConversationKey, message: MakeMessage
) -> None:
    assert await store.settings(key) == ChannelSettings()
    chosen = ChannelSettings(model="llama", system_prompt="Be brief.", memory=False)
    await store.save_settings(key, chosen)
    assert await store.settings(key) == chosen
    assert await store.settings(other_key) == ChannelSettings()
    # A conversation that already has messages keeps them when its settings change.
    await store.append(other_key, message("hello"))
    await store.save_settings(other_key, ChannelSettings(system_prompt="Pirate."))
    await store.save_settings(key, ChannelSettings())
    assert await store.settings(key) == ChannelSettings()
    assert await store.settings(other_key) == ChannelSettings(system_prompt="Pirate.")
    assert contents(await store.window(other_key, messages=10, token_budget=100)) == ["hello"]


async def test_finish_replaces_content_status_and_tokens(
    store: SqliteStore, key: ConversationKey, message: MakeMessage
) -> None:
    await store.append(key, message("question"))
    reply_id = await store.append(
        key, message("", role=Role.ASSISTANT, status=MessageStatus.STREAMING, tokens=0)
    )
    await store.finish(reply_id, message("the answer", role=Role.ASSISTANT, tokens=42))
    window = await store.window(key, messages=10, token_budget=100)
    assert contents(window) == ["question", "the answer"]
    assert (window[-1].status, window[-1].tokens) == (MessageStatus.COMPLETE, 42)
    await store.finish(999_999, message("nobody"))  # unknown id: nothing happens


async def test_mark_interrupted_only_touches_streaming_replies(
    store: SqliteStore, key: ConversationKey, other_key: ConversationKey, message: MakeMessage
) -> None:
    streaming = {"role": Role.ASSISTANT, "status": MessageStatus.STREAMING}
    await store.append(key, message("question"))
    await store.append(key, message("half an answer", **streaming))
    await store.append(other_key, message("another half", **streaming))
    failed = {"role": Role.ASSISTANT, "status": MessageStatus.FAILED}
    await store.append(other_key, message("failed", **failed))
    assert await store.mark_interrupted() == 2
    assert await store.mark_interrupted() == 0
    statuses = [
        m.status
        for k in (key, other_key)
        for m in await store.window(k, messages=10, token_budget=100)
    ]
    assert statuses == [
        MessageStatus.COMPLETE,
        MessageStatus.INTERRUPTED,
        MessageStatus.INTERRUPTED,
        MessageStatus.FAILED,
    ]


# --- group commit ------------------------------------------------------------------------------


async def test_a_burst_of_appends_is_group_committed(
    store: SqliteStore, message: MakeMessage, raw: sqlite3.Connection
) -> None:
    keys = [ConversationKey("slack", "T1", f"C{i % 50}") for i in range(200)]
    before = store.commits
    ids = await asyncio.gather(
        *(store.append(k, message(f"burst {i}")) for i, k in enumerate(keys))
    )
    assert len(set(ids)) == 200
    assert store.commits - before < 20, f"{store.commits - before} transactions for 200 appends"
    assert raw.execute("SELECT count(*) FROM messages").fetchone()[0] == 200
    rows = dict(raw.execute("SELECT id, content FROM messages"))
    assert [rows[i] for i in ids] == [f"burst {i}" for i in range(200)]  # each got its own id
    assert raw.execute("SELECT count(*) FROM conversations").fetchone()[0] == 50
    window = await store.window(keys[0], messages=10, token_budget=1000)
    assert contents(window) == [f"burst {i}" for i in range(0, 200, 50)]


async def test_close_commits_writes_still_queued(
    db_path: Path, key: ConversationKey, message: MakeMessage
) -> None:
    store = SqliteStore(db_path)
    await store.open()
    # close() is scheduled after the appends, so it finds their writes already queued.
    *ids, _ = await asyncio.gather(
        *(store.append(key, message(f"late {i}")) for i in range(10)), store.close()
    )
    assert len(set(ids)) == 10
    with pytest.raises(RuntimeError, match="open"):
        await store.append(key, message("after close"))

    reopened = SqliteStore(db_path)
    await reopened.open()
    try:
        window = await reopened.window(key, messages=20, token_budget=100)
        assert contents(window) == [f"late {i}" for i in range(10)]
    finally:
        await reopened.close()


async def test_a_locked_database_fails_the_batch_and_the_store_recovers(
    db_path: Path, key: ConversationKey, message: MakeMessage, raw: sqlite3.Connection
) -> None:
    store = SqliteStore(db_path, busy_timeout_ms=20)
    await store.open()
    try:
        raw.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        results = await asyncio.gather(
            *(store.append(key, message(f"m{i}")) for i in range(5)), return_exceptions=True
        )
        assert all(isinstance(r, StorageError) and "locked" in r.detail for r in results), results
        raw.execute("ROLLBACK")
        await store.append(key, message("after the lock"))
        window = await store.window(key, messages=10, token_budget=100)
        assert contents(window) == ["after the lock"]
    finally:
        await store.close()


async def test_healthy_only_while_writes_can_get_through(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "h.db", busy_timeout_ms=5000)
    assert not await store.healthy()  # not open yet
    await store.open()
    try:
        assert await store.healthy()
        with sqlite3.connect(tmp_path / "h.db", isolation_level=None) as other:
            other.execute("BEGIN EXCLUSIVE")  # another writer holds the database
            assert not await store.healthy()
            other.execute("ROLLBACK")
        assert await store.healthy()
    finally:
        await store.close()
    assert not await store.healthy()


async def test_a_version_1_file_migrates_and_keeps_its_messages(
    db_path: Path, key: ConversationKey
) -> None:
    with sqlite3.connect(db_path) as raw:
        for sql in MIGRATIONS[0]:
            raw.execute(sql)
        raw.execute("PRAGMA user_version = 1")
        raw.execute(
            "INSERT INTO conversations (platform, workspace, channel, created_at, updated_at)"
            " VALUES (?, ?, ?, 0, 0)",
            (key.platform, key.workspace, key.channel),
        )
        raw.execute(
            "INSERT INTO messages (conversation_id, role, content, status, tokens, created_at)"
            " VALUES (1, 'user', 'from version one', 'complete', 3, 0)"
        )
    store = SqliteStore(db_path)
    await store.open()
    try:
        [kept] = await store.window(key, messages=10, token_budget=100)
        assert kept.content == "from version one"
        assert await store.reset(key) == 1
        # version 4: the forgotten message's id (1) is never handed out again
        assert await store.append(key, StoredMessage(Role.USER, "new", 1)) == 2
    finally:
        await store.close()


async def test_a_crashed_reply_dangles_until_its_platform_message_is_fixed(
    store: SqliteStore, key: ConversationKey
) -> None:
    reply = await store.append(key, StoredMessage(Role.ASSISTANT, "", 0, MessageStatus.STREAMING))
    done = await store.append(key, StoredMessage(Role.ASSISTANT, "", 0, MessageStatus.STREAMING))
    partial = StoredMessage(Role.ASSISTANT, "Half of it", 3, MessageStatus.STREAMING)
    await store.checkpoint(reply, partial, '{"ts": "1.2"}')
    await store.checkpoint(done, partial, '{"ts": "3.4"}')
    await store.finish(done, StoredMessage(Role.ASSISTANT, "All of it", 3))  # ended well
    assert await store.dangling(key.platform) == []  # still streaming: not dangling yet

    assert await store.mark_interrupted() == 1  # the next start after a crash
    [dangling] = await store.dangling(key.platform)
    assert (dangling.message_id, dangling.key, dangling.content) == (reply, key, "Half of it")
    assert dangling.platform_ref == '{"ts": "1.2"}'
    assert await store.dangling("another-platform") == []
    await store.settle_dangling(reply)
    assert await store.dangling(key.platform) == []


async def test_an_exclusive_store_refuses_a_second_process(db_path: Path) -> None:
    first = SqliteStore(db_path, exclusive=True)
    await first.open()
    try:
        second = SqliteStore(db_path, exclusive=True)
        with pytest.raises(ConfigError) as refused:
            await second.open()
        assert f"pid {os.getpid()}" in refused.value.user_message
        assert "one parley per database file" in refused.value.user_message
    finally:
        await first.close()
    again = SqliteStore(db_path, exclusive=True)  # released on close
    await again.open()
    await again.close()


async def test_an_unopenable_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        await SqliteStore(tmp_path / "missing" / "p.db", exclusive=True).open()
    assert "PARLEY_DATABASE" in caught.value.user_message


@pytest.mark.parametrize(
    "broken",
    [
        {"tokens": -1},  # the schema refuses it
        {"tokens": 2**70},  # sqlite3 cannot bind it (OverflowError, not a sqlite3.Error)
    ],
)
async def test_one_failing_write_leaves_the_rest_of_its_batch_saved(
    store: SqliteStore,
    key: ConversationKey,
    other_key: ConversationKey,
    message: MakeMessage,
    broken: dict[str, int],
) -> None:
    commits = store.commits
    writes = [
        store.append(key, message("first")),
        store.append(other_key, message("broken", **broken)),
        store.append(key, message("second")),
    ]
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert store.commits == commits + 1  # one group commit for all three
    assert isinstance(results[1], StorageError)
    assert contents(await store.window(key, messages=10, token_budget=100)) == ["first", "second"]
    assert await store.window(other_key, messages=10, token_budget=100) == []
    await store.append(other_key, message("fine now"))  # its conversation row was rolled back too
    assert contents(await store.window(other_key, messages=10, token_budget=100)) == ["fine now"]


async def test_prune_deletes_only_older_messages_oldest_first_in_steps(
    store: SqliteStore, key: ConversationKey, raw: sqlite3.Connection
) -> None:
    for n, at in enumerate([100.0, 200.0, 300.0, 400.0, 500.0]):
        made = StoredMessage(Role.USER, f"m{n}", 1, created_at=at)
        await store.append(key, made)
    assert await store.prune(350.0, limit=2) == 2
    left = [row[0] for row in raw.execute("SELECT content FROM messages ORDER BY id")]
    assert left == ["m2", "m3", "m4"]
    assert await store.prune(350.0, limit=2) == 1
    assert await store.prune(350.0, limit=2) == 0
    assert (await store.settings(key)) is not None  # the conversation itself stays


async def test_retention_prunes_in_the_background(
    store: SqliteStore, key: ConversationKey, raw: sqlite3.Connection
) -> None:
    now = time.time()
    for n in range(1200):  # more than one step's worth of old messages
        await store.append(key, StoredMessage(Role.USER, f"old {n}", 1, created_at=now - 40 * DAY))
    await store.append(key, StoredMessage(Role.USER, "recent", 1, created_at=now - DAY))
    pruning = asyncio.create_task(prune_forever(store, days=30))

    def count() -> int:
        return int(raw.execute("SELECT count(*) FROM messages").fetchone()[0])

    await eventually(lambda: count() == 1)
    pruning.cancel()
    await asyncio.gather(pruning, return_exceptions=True)
    assert [row[0] for row in raw.execute("SELECT content FROM messages")] == ["recent"]
