"""Fixtures for storage tests: a real SQLite file in tmp_path, opened and closed per test."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from core.model import ConversationKey, MessageStatus, Role, StoredMessage
from storage.sqlite import SqliteStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "parley.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(db_path)
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
def raw(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection to the same file, to look behind the store's back."""
    connection = sqlite3.connect(db_path, isolation_level=None)
    yield connection
    connection.close()


@pytest.fixture
def key() -> ConversationKey:
    return ConversationKey("slack", "T1", "C1")


@pytest.fixture
def other_key() -> ConversationKey:
    return ConversationKey("slack", "T1", "C2")


MakeMessage = Callable[..., StoredMessage]


@pytest.fixture
def message() -> MakeMessage:
    """Build a StoredMessage with short defaults: message("hi", tokens=3, role=Role.ASSISTANT)."""

    def make(
        content: str,
        *,
        tokens: int = 1,
        role: Role = Role.USER,
        status: MessageStatus = MessageStatus.COMPLETE,
        author: str = "U1",
    ) -> StoredMessage:
        return StoredMessage(role, content, tokens, status, author=author, request_id="req")

    return make
