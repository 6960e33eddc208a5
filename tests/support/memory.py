"""InMemoryStore: the `core.memory.MemoryStore` port in a dict, faithful to the SQLite store.

What a caller can see is what `storage.sqlite.SqliteStore` does (tests/contract runs the same
suite on both): ids increase; `window()` reads the newest `messages` rows (empty ones count
toward that limit but are never returned), keeps at least one and stops, rather than skips,
at the first one past the token budget; `finish()` forgets the platform reference;
`checkpoint()` touches STREAMING rows only; an unknown message id changes nothing and raises
nothing; `prune(limit=-1)` has no limit (SQLite's LIMIT -1); a call before `open()` or after
`close()` raises RuntimeError. StorageError where SQLite raises it: a negative token count on
a row it writes, an integer too large for SQLite, text that is not valid UTF-8 (a lone
surrogate) — and, for fault tests, every write while `failing` (every read while
`failing_reads`).

One deliberate difference: ids are never reused. SQLite's `INTEGER PRIMARY KEY` (no
AUTOINCREMENT) hands out max(id) + 1, so after the newest rows are reset or pruned it gives
their ids again; the contract suite pins that as an xfail of the SQLite store.

Each call yields to the event loop once before it acts, as a real store's round trip does,
so concurrent calls interleave instead of running as plain function calls.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import StorageError
from core.memory import MemoryStore
from core.model import (
    ChannelSettings,
    ConversationKey,
    DanglingReply,
    MessageStatus,
    StoredMessage,
)

SQLITE_MAX_INT = 2**63 - 1
SQLITE_MIN_INT = -(2**63)


@dataclass(frozen=True, slots=True)
class StoredRow:
    """One row as the store keeps it: for assertions (the port never returns these)."""

    id: int
    key: ConversationKey
    message: StoredMessage
    platform_ref: str | None = None


class InMemoryStore:
    """MemoryStore in memory. Reopening the same instance keeps its data (like a file);
    a new instance starts empty.

    `failing`: every write raises StorageError (and `healthy()` is False);
    `failing_reads`: every read raises StorageError. `writes` counts the writes that
    succeeded.
    """

    def __init__(self) -> None:
        self.failing = False
        self.failing_reads = False
        self.writes = 0
        self._open = False
        self._rows: dict[int, StoredRow] = {}  # insertion order is id order
        self._settings: dict[ConversationKey, ChannelSettings] = {}
        self._last_id = 0
        self._changed = asyncio.Condition()

    # -- lifecycle --------------------------------------------------------------------
    async def open(self) -> None:
        await asyncio.sleep(0)
        self._open = True

    async def close(self) -> None:
        await asyncio.sleep(0)
        self._open = False

    async def healthy(self) -> bool:
        await asyncio.sleep(0)
        return self._open and not self.failing

    # -- writes -----------------------------------------------------------------------
    async def append(self, key: ConversationKey, message: StoredMessage) -> int:
        [message_id] = await self.append_all(key, [message])
        return message_id

    async def append_all(
        self, key: ConversationKey, messages: Sequence[StoredMessage]
    ) -> list[int]:
        await self._write()
        _check_key(key)
        for message in messages:  # all or none: check every row before keeping any
            _check_message(message)
            _check_tokens(message.tokens)
        ids = []
        for message in messages:
            self._last_id += 1
            self._rows[self._last_id] = StoredRow(self._last_id, key, message)
            ids.append(self._last_id)
        self._settings.setdefault(key, ChannelSettings())  # the conversation's row
        await self._wrote()
        return ids

    async def finish(self, message_id: int, message: StoredMessage) -> None:
        await self._write()
        _check_message(message)
        _check_int(message_id)
        row = self._rows.get(message_id)
        if row is not None:
            _check_tokens(message.tokens)
            done = dataclasses.replace(
                row.message, content=message.content, status=message.status, tokens=message.tokens
            )
            self._rows[message_id] = dataclasses.replace(row, message=done, platform_ref=None)
        await self._wrote()

    async def checkpoint(
        self, message_id: int, message: StoredMessage, platform_ref: str | None
    ) -> None:
        await self._write()
        _check_message(message)
        _check_text(platform_ref)
        _check_int(message_id)
        row = self._rows.get(message_id)
        if row is not None and row.message.status is MessageStatus.STREAMING:
            _check_tokens(message.tokens)
            saved = dataclasses.replace(row.message, content=message.content, tokens=message.tokens)
            self._rows[message_id] = dataclasses.replace(
                row, message=saved, platform_ref=platform_ref
            )
        await self._wrote()

    async def settle_dangling(self, message_id: int) -> None:
        await self._write()
        _check_int(message_id)
        row = self._rows.get(message_id)
        if row is not None:
            self._rows[message_id] = dataclasses.replace(row, platform_ref=None)
        await self._wrote()

    async def reset(self, key: ConversationKey) -> int:
        await self._write()
        _check_key(key)
        gone = [row.id for row in self._rows.values() if row.key == key]
        for message_id in gone:
            del self._rows[message_id]
        await self._wrote()
        return len(gone)

    async def save_settings(self, key: ConversationKey, settings: ChannelSettings) -> None:
        await self._write()
        _check_key(key)
        _check_text(settings.model, settings.system_prompt)
        self._settings[key] = settings
        await self._wrote()

    async def prune(self, older_than: float, *, limit: int) -> int:
        await self._write()
        _check_int(limit)
        old = sorted(
            (row for row in self._rows.values() if row.message.created_at < older_than),
            key=lambda row: (row.message.created_at, row.id),
        )
        if limit >= 0:  # SQLite: a negative LIMIT is no limit
            old = old[:limit]
        for row in old:
            del self._rows[row.id]
        await self._wrote()
        return len(old)

    async def mark_interrupted(self) -> int:
        await self._write()
        streaming = [
            row for row in self._rows.values() if row.message.status is MessageStatus.STREAMING
        ]
        for row in streaming:
            marked = dataclasses.replace(row.message, status=MessageStatus.INTERRUPTED)
            self._rows[row.id] = dataclasses.replace(row, message=marked)
        await self._wrote()
        return len(streaming)

    # -- reads ------------------------------------------------------------------------
    async def dangling(self, platform: str) -> list[DanglingReply]:
        await self._read()
        _check_text(platform)
        return [
            DanglingReply(row.id, row.key, row.message.content, row.platform_ref)
            for row in self._rows.values()
            if row.platform_ref is not None
            and row.message.status is MessageStatus.INTERRUPTED
            and row.key.platform == platform
        ]

    async def window(
        self, key: ConversationKey, *, messages: int, token_budget: int
    ) -> list[StoredMessage]:
        if messages <= 0:
            return []  # as SQLite's store: before any read (so even when closed)
        await self._read()
        _check_key(key)
        _check_int(messages)
        newest = [row.message for row in reversed(self._rows.values()) if row.key == key]
        kept: list[StoredMessage] = []
        used = 0
        for message in newest[:messages]:  # empty rows count toward the limit, as in SQL
            if not message.content:
                continue
            if kept and used + message.tokens > token_budget:
                break
            used += message.tokens
            kept.append(message)
        kept.reverse()
        return kept

    async def settings(self, key: ConversationKey) -> ChannelSettings:
        await self._read()
        _check_key(key)
        return self._settings.get(key, ChannelSettings())

    # -- for assertions ---------------------------------------------------------------
    def rows(self, key: ConversationKey | None = None) -> list[StoredRow]:
        """Every row (of `key`, when given), oldest first, empty and streaming ones too."""
        return [row for row in self._rows.values() if key is None or row.key == key]

    async def until(
        self, condition: Callable[[InMemoryStore], bool], *, timeout: float = 2.0
    ) -> None:
        """Wait (at most `timeout` seconds) until `condition(store)` holds after a write."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: condition(self))

    # -- internals --------------------------------------------------------------------
    def _usable(self) -> None:
        if not self._open:
            raise RuntimeError("InMemoryStore is not open: call open() first")

    async def _write(self) -> None:
        await asyncio.sleep(0)
        self._usable()
        if self.failing:
            raise StorageError(detail="InMemoryStore: failing (writes)")

    async def _read(self) -> None:
        await asyncio.sleep(0)
        self._usable()
        if self.failing_reads:
            raise StorageError(detail="InMemoryStore: failing (reads)")

    async def _wrote(self) -> None:
        self.writes += 1
        async with self._changed:
            self._changed.notify_all()


def _check_key(key: ConversationKey) -> None:
    _check_text(key.platform, key.workspace, key.channel)


def _check_message(message: StoredMessage) -> None:
    """What SQLite refuses while binding a row's values (whether or not a row matches)."""
    _check_text(message.content, message.author, message.request_id)
    _check_int(message.tokens)


def _check_tokens(tokens: int) -> None:
    """The schema's CHECK (tokens >= 0), on a row actually written."""
    if tokens < 0:
        raise StorageError(detail="IntegrityError: CHECK constraint failed: tokens >= 0")


def _check_int(value: int) -> None:
    if not SQLITE_MIN_INT <= value <= SQLITE_MAX_INT:
        raise StorageError(detail="OverflowError: Python int too large to convert to SQLite")


def _check_text(*values: str | None) -> None:
    for value in values:
        if value is None:
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise StorageError(detail=f"UnicodeEncodeError: {exc}") from None


if TYPE_CHECKING:  # mypy proves the fake satisfies the port
    _port: type[MemoryStore] = InMemoryStore
