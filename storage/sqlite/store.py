"""SQLite memory store: the embedded default behind `core.memory.MemoryStore`.

Every write goes through one writer task that commits whatever is waiting as ONE transaction
(group commit), so a burst of 200 appends costs a few fsyncs instead of 200. Reads are batched
the same way: one reader task runs whatever reads are waiting in one hop to its own thread and
connection (measured at 200 conversations at once: a hop per read, through aiosqlite's one
thread, put the context window load of the last turns ~400 ms behind the first). Each read is
one indexed query however long a channel's history is.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiosqlite

from core.errors import ConfigError, ParleyError, StorageError
from core.memory import MemoryStore
from core.model import (
    ChannelSettings,
    ConversationKey,
    DanglingReply,
    MessageStatus,
    Role,
    StoredMessage,
)

T = TypeVar("T")

# Schema version N is MIGRATIONS[N - 1]. Add new steps at the end; never edit a released one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            workspace TEXT NOT NULL,
            channel TEXT NOT NULL,
            model TEXT NULL,
            system_prompt TEXT NULL,
            memory INTEGER NOT NULL DEFAULT 1,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (platform, workspace, channel)
        )""",
        """CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL,
            content TEXT NOT NULL,
            status TEXT NOT NULL,
            tokens INTEGER NOT NULL CHECK (tokens >= 0),
            author TEXT NOT NULL DEFAULT '',
            request_id TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX messages_by_conversation ON messages (conversation_id, id)",
    ),
    (
        # Where a streaming reply is shown on its platform, so a restart after a crash can
        # edit that message to say the answer was interrupted. Cleared when a reply ends.
        "ALTER TABLE messages ADD COLUMN platform_ref TEXT NULL",
        "CREATE INDEX messages_with_ref ON messages (id) WHERE platform_ref IS NOT NULL",
    ),
    (
        # One row the readiness probe rewrites: a real write, so a full disk shows.
        "CREATE TABLE health (id INTEGER PRIMARY KEY CHECK (id = 1), probed_at REAL NOT NULL)",
        # Retention deletes the oldest messages first, by time, in small steps.
        "CREATE INDEX messages_by_time ON messages (created_at)",
    ),
    (
        # Ids never come back: without AUTOINCREMENT a reset or a prune of the newest rows
        # hands their ids to the next messages, and a late final save (a retry after the
        # store failed) or a checkpoint would then overwrite someone else's message.
        """CREATE TABLE messages_v4 (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL,
            content TEXT NOT NULL,
            status TEXT NOT NULL,
            tokens INTEGER NOT NULL CHECK (tokens >= 0),
            author TEXT NOT NULL DEFAULT '',
            request_id TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            platform_ref TEXT NULL
        )""",
        """INSERT INTO messages_v4 (id, conversation_id, role, content, status, tokens, author,
            request_id, created_at, platform_ref)
        SELECT id, conversation_id, role, content, status, tokens, author, request_id,
            created_at, platform_ref FROM messages""",
        "DROP TABLE messages",
        "ALTER TABLE messages_v4 RENAME TO messages",
        "CREATE INDEX messages_by_conversation ON messages (conversation_id, id)",
        "CREATE INDEX messages_with_ref ON messages (id) WHERE platform_ref IS NOT NULL",
        "CREATE INDEX messages_by_time ON messages (created_at)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_CONVERSATION = "SELECT id FROM conversations WHERE platform = ? AND workspace = ? AND channel = ?"

# Newest first, walking the (conversation_id, id) index backwards: no scan, no sort.
WINDOW_SQL = (
    "SELECT role, content, tokens, status, author, request_id, created_at FROM messages"
    f" WHERE conversation_id = ({_CONVERSATION}) ORDER BY id DESC LIMIT ?"
)
_SETTINGS_SQL = (
    "SELECT model, system_prompt, memory FROM conversations"
    " WHERE platform = ? AND workspace = ? AND channel = ?"
)
_ENSURE_CONVERSATION_SQL = (
    "INSERT INTO conversations (platform, workspace, channel, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (platform, workspace, channel)"
    " DO UPDATE SET updated_at = excluded.updated_at RETURNING id"
)
_SAVE_SETTINGS_SQL = (
    "INSERT INTO conversations"
    " (platform, workspace, channel, model, system_prompt, memory, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (platform, workspace, channel)"
    " DO UPDATE SET model = excluded.model, system_prompt = excluded.system_prompt,"
    " memory = excluded.memory, updated_at = excluded.updated_at RETURNING id"
)
_INSERT_MESSAGE_SQL = (
    "INSERT INTO messages"
    " (conversation_id, role, content, status, tokens, author, request_id, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)
_FINISH_SQL = (
    "UPDATE messages SET content = ?, status = ?, tokens = ?, platform_ref = NULL WHERE id = ?"
)
_CHECKPOINT_SQL = (
    "UPDATE messages SET content = ?, tokens = ?, platform_ref = ?"
    " WHERE id = ? AND status = 'streaming'"
)
_DANGLING_SQL = (
    "SELECT m.id, c.platform, c.workspace, c.channel, m.content, m.platform_ref"
    " FROM messages AS m JOIN conversations AS c ON c.id = m.conversation_id"
    " WHERE m.platform_ref IS NOT NULL AND m.status = 'interrupted' AND c.platform = ?"
    " ORDER BY m.id"
)
_FORGET_REF_SQL = "UPDATE messages SET platform_ref = NULL WHERE id = ?"
_RESET_SQL = f"DELETE FROM messages WHERE conversation_id = ({_CONVERSATION})"
_INTERRUPT_SQL = "UPDATE messages SET status = 'interrupted' WHERE status = 'streaming'"
_TOUCH_SQL = "UPDATE conversations SET updated_at = ? WHERE id = ?"
_PROBE_SQL = (
    "INSERT INTO health (id, probed_at) VALUES (1, ?)"
    " ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at"
)
_PRUNE_SQL = (
    "DELETE FROM messages WHERE id IN"
    " (SELECT id FROM messages WHERE created_at < ? ORDER BY created_at LIMIT ?)"
)
MIN_FREE_BYTES = 1 << 20
"""Less free space than this where the database lives: not ready (writes are about to fail)."""

# Conversation ids are never deleted, so a cached id stays valid; the bound only caps memory.
_ID_CACHE_SIZE = 10_000


@dataclass(slots=True)
class _Batch:
    """What the writes of one group-commit transaction share besides the connection."""

    db: sqlite3.Connection  # the writer's own connection, used on the writer's thread
    now: float
    new_ids: dict[ConversationKey, int] = field(default_factory=dict)  # cached only on COMMIT
    touched: set[int] = field(default_factory=set)


_Op = Callable[[_Batch], Any]  # runs on the writer's thread, inside the batch transaction
_Write = tuple[_Op, asyncio.Future[Any]]
_Read = tuple[str, tuple[Any, ...], asyncio.Future[list[Any]]]


def _fields(key: ConversationKey) -> tuple[str, str, str]:
    return (key.platform, key.workspace, key.channel)


def _rows(db: sqlite3.Connection, sql: str, params: Iterable[Any] = ()) -> list[Any]:
    return db.execute(sql, tuple(params)).fetchall()


def _count(db: sqlite3.Connection, sql: str, params: Iterable[Any] = ()) -> int:
    return db.execute(sql, tuple(params)).rowcount


async def _fetchall(db: aiosqlite.Connection, sql: str, params: Iterable[Any] = ()) -> list[Any]:
    return list(await db.execute_fetchall(sql, params))


async def _user_version(db: aiosqlite.Connection) -> int:
    return int((await _fetchall(db, "PRAGMA user_version"))[0][0])


async def _migrate(db: aiosqlite.Connection, path: Path) -> None:
    """Bring the file up to SCHEMA_VERSION in one transaction; refuse a file from the future."""
    if await _user_version(db) == SCHEMA_VERSION:
        return
    await db.execute("BEGIN IMMEDIATE")
    try:
        version = await _user_version(db)  # re-read under the lock: another process may have won
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"The database {path} was written by a newer parley (schema version {version};"
                f" this one knows up to {SCHEMA_VERSION}). Upgrade parley or use another file."
            )
        for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
            for sql in step:
                await db.execute(sql)
            await db.execute(f"PRAGMA user_version = {number}")
        await db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            await db.execute("ROLLBACK")
        raise


class SqliteStore:
    """MemoryStore on one SQLite file (WAL), with a group-committing writer for bursts.

    `commits` counts the writer's committed transactions: read it, never set it.
    """

    def __init__(
        self, path: str | Path, *, busy_timeout_ms: int = 5000, exclusive: bool = False
    ) -> None:
        self.path = Path(path)
        self._exclusive = exclusive
        self._lock: int | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._wdb: sqlite3.Connection | None = None
        self._reader_thread: ThreadPoolExecutor | None = None
        self._rdb: sqlite3.Connection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._reads: asyncio.Queue[_Read | None] = asyncio.Queue()
        self.commits = 0
        self._busy_timeout_ms = busy_timeout_ms
        self._db: aiosqlite.Connection | None = None
        self._writer: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[_Write | None] = asyncio.Queue()
        self._ids: dict[ConversationKey, int] = {}

    async def open(self) -> None:
        """Connect, tune the connection, migrate the schema and start the writer.

        With `exclusive`, refuse to open a file another parley process is serving: two bots
        on one database would answer every message twice and race each other's writes.
        """
        try:
            if self._exclusive:
                self._lock = _lock_file(self.path)
            # isolation_level=None: we issue BEGIN IMMEDIATE/COMMIT, sqlite3 adds nothing.
            db = await aiosqlite.connect(self.path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            self._release()
            raise unusable(self.path, exc) from None
        except BaseException:
            self._release()
            raise
        try:
            for pragma in (
                f"busy_timeout = {int(self._busy_timeout_ms)}",
                "journal_mode = WAL",
                # WAL + NORMAL: no fsync per commit; survives a process crash, while a power cut
                # may lose the last commits (never corrupts). FULL would fsync every batch.
                "synchronous = NORMAL",
                "foreign_keys = ON",
            ):
                await _fetchall(db, f"PRAGMA {pragma}")
            await _migrate(db, self.path)
        except sqlite3.Error as exc:
            await db.close()
            self._release()
            raise unusable(self.path, exc) from None
        except BaseException:
            await db.close()
            self._release()
            raise
        self._db = db
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="parley-sqlite-writer")
        loop = asyncio.get_running_loop()
        self._wdb = await loop.run_in_executor(
            self._executor, _connect_writer, self.path, self._busy_timeout_ms
        )
        self._writer = asyncio.create_task(self._write_loop(self._wdb), name="parley-sqlite-writer")
        self._reads = asyncio.Queue()
        self._reader_thread = ThreadPoolExecutor(1, thread_name_prefix="parley-sqlite-reader")
        self._rdb = await loop.run_in_executor(
            self._reader_thread, _connect_writer, self.path, self._busy_timeout_ms
        )
        self._reader = asyncio.create_task(self._read_loop(self._rdb), name="parley-sqlite-reader")

    async def close(self) -> None:
        """Commit everything already queued, stop the writer, release the file."""
        if self._db is None:
            return
        writer, self._writer = self._writer, None  # refuse new writes from here on
        if writer is not None:
            self._queue.put_nowait(None)
            await writer
        reader, self._reader = self._reader, None
        if reader is not None:
            self._reads.put_nowait(None)
            await reader
        if self._rdb is not None and self._reader_thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._reader_thread, self._rdb.close)
            self._reader_thread.shutdown(wait=False)
            self._rdb = self._reader_thread = None
        if self._wdb is not None and self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._wdb.close)
            self._executor.shutdown(wait=False)
            self._wdb = self._executor = None
        await self._db.close()
        self._db = None
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the flock
            self._lock = None

    async def append(self, key: ConversationKey, message: StoredMessage) -> int:
        """Insert one message; returns its id once the batch holding it is committed."""

        [message_id] = await self.append_all(key, [message])
        return message_id

    async def append_all(
        self, key: ConversationKey, messages: Sequence[StoredMessage]
    ) -> list[int]:
        """Insert messages in order, in one transaction; returns their ids once committed."""

        def insert(batch: _Batch) -> list[int]:
            conversation_id = self._conversation_id(batch, key)
            ids = []
            for m in messages:
                params: list[Any] = [conversation_id, m.role.value, m.content, m.status.value]
                params += [m.tokens, m.author, m.request_id, m.created_at]
                ids.append(int(_rows(batch.db, _INSERT_MESSAGE_SQL, params)[0][0]))
            return ids

        return await self._submit(insert)

    async def finish(self, message_id: int, message: StoredMessage) -> None:
        """Replace a message's content, status and tokens; an unknown id changes nothing."""
        params = (message.content, message.status.value, message.tokens, message_id)
        await self._submit(lambda batch: _count(batch.db, _FINISH_SQL, params))

    async def reset(self, key: ConversationKey) -> int:
        """Delete the conversation's messages but keep its settings; returns how many."""
        return await self._submit(lambda batch: _count(batch.db, _RESET_SQL, _fields(key)))

    async def save_settings(self, key: ConversationKey, settings: ChannelSettings) -> None:
        """Store the settings in the conversation's row, creating the row when needed."""

        def upsert(batch: _Batch) -> None:
            params = (*_fields(key), settings.model, settings.system_prompt, int(settings.memory))
            rows = _rows(batch.db, _SAVE_SETTINGS_SQL, (*params, batch.now, batch.now))
            batch.new_ids[key] = int(rows[0][0])

        await self._submit(upsert)

    async def checkpoint(
        self, message_id: int, message: StoredMessage, platform_ref: str | None
    ) -> None:
        """Save a streaming reply's text so far and where it is shown."""
        params = (message.content, message.tokens, platform_ref, message_id)
        await self._submit(lambda batch: _count(batch.db, _CHECKPOINT_SQL, params))

    async def dangling(self, platform: str) -> list[DanglingReply]:
        """Replies a crash interrupted whose platform message still looks unfinished."""
        rows = await self._read(_DANGLING_SQL, (platform,))
        return [
            DanglingReply(int(i), ConversationKey(p, w, c), content, ref)
            for i, p, w, c, content, ref in rows
        ]

    async def settle_dangling(self, message_id: int) -> None:
        """The platform message now says it was interrupted: forget where it is."""
        await self._submit(lambda batch: _count(batch.db, _FORGET_REF_SQL, (message_id,)))

    async def prune(self, older_than: float, *, limit: int) -> int:
        """Delete up to `limit` of the oldest messages created before `older_than`."""
        params = (older_than, limit)
        return await self._submit(lambda batch: _count(batch.db, _PRUNE_SQL, params))

    async def mark_interrupted(self) -> int:
        """Mark replies a crash left STREAMING as INTERRUPTED; a write, so it joins the queue."""
        return await self._submit(lambda batch: _count(batch.db, _INTERRUPT_SQL))

    async def window(
        self, key: ConversationKey, *, messages: int, token_budget: int
    ) -> list[StoredMessage]:
        """The newest non-empty messages that fit both limits, oldest first (at least one)."""
        if messages <= 0:
            return []  # LIMIT -1 would mean "no limit" to SQLite
        rows = await self._read(WINDOW_SQL, (*_fields(key), messages))
        kept: list[StoredMessage] = []
        used = 0
        for role, content, tokens, status, *rest in rows:  # rest: author, request_id, created_at
            if not content:
                continue
            if kept and used + tokens > token_budget:
                break  # stop, don't skip: the context must be a contiguous tail of the history
            used += tokens
            kept.append(StoredMessage(Role(role), content, tokens, MessageStatus(status), *rest))
        kept.reverse()
        return kept

    async def healthy(self) -> bool:
        """True when a real write commits within 2 s and the disk has room for more."""
        if self._writer is None or self._writer.done():
            return False
        if not (os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)):
            return False
        try:
            room = os.statvfs(self.path.parent)
        except OSError:
            return False
        if room.f_bavail * room.f_frsize < MIN_FREE_BYTES:
            return False
        probe = asyncio.ensure_future(
            self._submit(lambda batch: _count(batch.db, _PROBE_SQL, (batch.now,)))
        )
        try:
            async with asyncio.timeout(2.0):
                await asyncio.shield(probe)  # a late probe still commits harmlessly
        except (TimeoutError, StorageError):
            return False
        return True

    async def settings(self, key: ConversationKey) -> ChannelSettings:
        """The conversation's settings, or the defaults when it has none yet."""
        rows = await self._read(_SETTINGS_SQL, _fields(key))
        if not rows:
            return ChannelSettings()
        model, system_prompt, memory = rows[0]
        return ChannelSettings(model=model, system_prompt=system_prompt, memory=bool(memory))

    async def _read(self, sql: str, params: Iterable[Any]) -> list[Any]:
        """Queue one read for the reader and wait for its rows."""
        if self._reader is None:
            raise RuntimeError("SqliteStore is not open: call open() first")
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._reads.put_nowait((sql, tuple(params), future))
        return await future

    async def _read_loop(self, db: sqlite3.Connection) -> None:
        """Run every read waiting in one hop to the reader's thread, repeat until stopped."""
        loop = asyncio.get_running_loop()
        while True:
            waiting = [await self._reads.get()]
            while not self._reads.empty():
                waiting.append(self._reads.get_nowait())
            reads = [read for read in waiting if read is not None]
            if reads:
                queries = [(sql, params) for sql, params, _ in reads]
                try:
                    results = await loop.run_in_executor(
                        self._reader_thread, _run_reads, db, queries
                    )
                except Exception as exc:  # the thread itself failed: every read fails
                    results = [exc] * len(reads)
                for (_, _, future), result in zip(reads, results, strict=True):
                    if future.done():
                        continue  # its caller was cancelled meanwhile
                    if isinstance(result, Exception):
                        future.set_exception(_storage_error(result))
                    else:
                        future.set_result(result)
            if len(reads) < len(waiting):  # close() queued None after the last read
                return

    async def _submit(self, op: Callable[[_Batch], T]) -> T:
        """Queue one write for the writer and wait until its transaction commits or fails."""
        if self._writer is None:
            raise RuntimeError("SqliteStore is not open: call open() first")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((op, future))
        return await future

    def _conversation_id(self, batch: _Batch, key: ConversationKey) -> int:
        """The conversation's id from the cache, or from an upsert (cached once committed)."""
        found = self._ids.get(key) or batch.new_ids.get(key)
        if found is None:
            params = (*_fields(key), batch.now, batch.now)
            found = batch.new_ids[key] = int(
                _rows(batch.db, _ENSURE_CONVERSATION_SQL, params)[0][0]
            )
        batch.touched.add(found)
        return found

    async def _write_loop(self, db: sqlite3.Connection) -> None:
        """Take everything waiting, commit it as one transaction, repeat until told to stop."""
        while True:
            waiting = [await self._queue.get()]
            while not self._queue.empty():
                waiting.append(self._queue.get_nowait())
            writes = [write for write in waiting if write is not None]
            if writes:
                await self._commit(db, writes)
            if len(writes) < len(waiting):  # close() queued None after the last write
                return

    async def _commit(self, db: sqlite3.Connection, writes: list[_Write]) -> None:
        """Run one batch; every caller gets its result, or the batch's exception."""
        batch = _Batch(db, time.time())
        ops = [op for op, _ in writes]
        try:
            # The whole transaction is ONE hop to the writer's thread: a busy event loop then
            # delays a batch once, not once per statement.
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(self._executor, _transaction, batch, ops)
            self.commits += 1
            for key, conversation_id in batch.new_ids.items():
                if len(self._ids) >= _ID_CACHE_SIZE:
                    del self._ids[next(iter(self._ids))]
                self._ids[key] = conversation_id
            for (_, future), result in zip(writes, results, strict=True):
                if future.done():  # the caller may have been cancelled meanwhile
                    continue
                if isinstance(result, _Failed):
                    future.set_exception(_storage_error(result.error))
                else:
                    future.set_result(result)
        except Exception as exc:
            error = _storage_error(exc)
            for _, future in writes:
                if not future.done():
                    future.set_exception(error)
        finally:
            for _, future in writes:
                future.cancel()  # no-op unless the writer itself was cancelled mid-batch


@dataclass(frozen=True, slots=True)
class _Failed:
    """One op of a batch that failed on its own (the rest of the batch committed)."""

    error: Exception


def _transaction(batch: _Batch, ops: list[_Op]) -> list[Any]:
    """BEGIN IMMEDIATE, every op, touch the conversations, COMMIT (on the writer thread).

    Each op runs in a savepoint of its own: one that fails (a constraint, a bad value) is
    rolled back alone and reported as _Failed, and the unrelated writes around it commit."""
    db = batch.db
    db.execute("BEGIN IMMEDIATE")
    try:
        results = [_one(batch, op) for op in ops]
        db.executemany(_TOUCH_SQL, [(batch.now, cid) for cid in batch.touched])
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return results


def _one(batch: _Batch, op: _Op) -> Any:
    db = batch.db
    before = set(batch.new_ids)
    db.execute("SAVEPOINT op")
    try:
        result = op(batch)
    except Exception as exc:  # sqlite3's errors, and a value it cannot bind (too big an int)
        if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc).lower():
            raise  # the disk, not this op: the whole batch fails and is reported so
        db.execute("ROLLBACK TO op")
        db.execute("RELEASE op")
        for key in set(batch.new_ids) - before:  # a conversation row it made is gone again
            del batch.new_ids[key]
        return _Failed(exc)
    db.execute("RELEASE op")
    return result


def _run_reads(
    db: sqlite3.Connection, queries: list[tuple[str, tuple[Any, ...]]]
) -> list[list[Any] | Exception]:
    """Every read of a batch, on the reader's thread; a failing one fails alone."""
    results: list[list[Any] | Exception] = []
    for sql, params in queries:
        try:
            results.append(db.execute(sql, params).fetchall())
        except sqlite3.Error as exc:
            results.append(exc)
    return results


def _connect_writer(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in (
        f"busy_timeout = {busy_timeout_ms}",
        "synchronous = NORMAL",
        "foreign_keys = ON",
    ):
        db.execute(f"PRAGMA {pragma}")
    return db


def inspect_file(path: Path) -> str:
    """What `parley doctor` can say of the database without creating or changing any file:
    one sentence, or ConfigError with the sentence and a fix."""
    if not path.exists():
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            raise ConfigError(f"{folder} does not exist: create it, or set PARLEY_DATABASE")
        if not os.access(folder, os.W_OK):
            raise ConfigError(f"{folder} is not writable: parley cannot create {path.name} there")
        return f"{path} does not exist yet; parley will create it"
    try:  # immutable: no lock, no -wal or -shm file made for this look
        uri = f"file:{path.resolve()}?mode=ro&immutable=1"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path} is not a parley database ({exc})") from None
    if version > SCHEMA_VERSION:
        raise ConfigError(f"{path} was written by a newer parley (schema {version})")
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        raise ConfigError(f"{path} (or its folder) is not writable")
    return f"{path} is a parley database (schema {version}), writable"


def _lock_file(path: Path) -> int:
    """Hold an exclusive lock on the database file itself for this process's lifetime
    (released on exit, even a crash). By the file, not its name: a symlink, a hard link or
    a bind mount to the same file finds it held. flock() does not touch SQLite's own
    (fcntl) locks; the descriptor stays open until the store's connections are closed."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _lock_holder(os.fstat(fd)) or "?"
        os.close(fd)
        raise ConfigError(
            f"parley: another parley (pid {holder}) is using {path}; SQLite allows one parley"
            " per database file. Stop it first, or set PARLEY_DATABASE to another file."
        ) from None
    return fd


def _lock_holder(stat: os.stat_result) -> str | None:
    """The pid holding a flock on this file, from /proc/locks (Linux; None elsewhere)."""
    device = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device:
            return fields[4]
    return None


def unusable(path: Path, exc: BaseException) -> ConfigError:
    """The one line to stop on when the database file cannot serve (exit status 2)."""
    detail = str(exc).strip() or type(exc).__name__
    text = detail.lower()
    denied = isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
    if denied:
        advice = "parley may not write it: give its user write access to it and its folder"
    elif "not a database" in text:
        advice = "it is not a SQLite database: point PARLEY_DATABASE at parley's, or a new file"
    elif "malformed" in text or "corrupt" in text:
        advice = "it is damaged: restore it from a backup, or move it aside to start afresh"
    elif "readonly" in text or "read-only" in text or "permission" in text:
        advice = "parley may not write it: give its user write access to it and its folder"
    else:
        advice = "point PARLEY_DATABASE at a file in a writable directory"
    return ConfigError(f"parley: cannot use the database {path} ({detail}): {advice}.")


def _storage_error(exc: Exception) -> Exception:
    """The port's error type for driver failures (a Postgres store raises the same)."""
    if isinstance(exc, ParleyError):
        return exc
    return StorageError(detail=f"{type(exc).__name__}: {exc}")


if TYPE_CHECKING:  # mypy --strict proves the class satisfies the port, at no runtime cost
    _port: type[MemoryStore] = SqliteStore
