"""The memory port: what the engine needs from any store (SQLite today, Postgres later)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from core.model import ChannelSettings, ConversationKey, DanglingReply, StoredMessage


class MemoryStore(Protocol):
    """Per-conversation message history and settings."""

    async def open(self) -> None:
        """Create or migrate the schema; called once at start."""

    async def close(self) -> None:
        """Flush pending writes and release the database."""

    async def healthy(self) -> bool:
        """True when the store can be read and written right now (readiness probes)."""

    async def append(self, key: ConversationKey, message: StoredMessage) -> int:
        """Persist one message (it survives a crash of the process) and return its id.

        Writes may be group-committed. Failures raise core.errors.StorageError.
        """

    async def append_all(
        self, key: ConversationKey, messages: Sequence[StoredMessage]
    ) -> list[int]:
        """Persist several messages of one conversation together, in this order (ids
        increasing), all or none; returns their ids. Failures raise StorageError."""

    async def finish(self, message_id: int, message: StoredMessage) -> None:
        """Replace a message's content, status and token count (a streamed reply ends);
        it forgets the reply's platform reference."""

    async def checkpoint(
        self, message_id: int, message: StoredMessage, platform_ref: str | None
    ) -> None:
        """Save a STREAMING reply's text so far and where it is shown (for crash recovery)."""

    async def dangling(self, platform: str) -> list[DanglingReply]:
        """Replies interrupted by a crash whose platform message has not been told yet."""

    async def settle_dangling(self, message_id: int) -> None:
        """The platform message of a dangling reply now says it was interrupted."""

    async def window(
        self, key: ConversationKey, *, messages: int, token_budget: int
    ) -> list[StoredMessage]:
        """The newest messages, oldest first, that fit both limits; one indexed query."""

    async def reset(self, key: ConversationKey) -> int:
        """Forget a conversation's messages; returns how many were deleted."""

    async def settings(self, key: ConversationKey) -> ChannelSettings:
        """The conversation's settings (defaults when never set)."""

    async def save_settings(self, key: ConversationKey, settings: ChannelSettings) -> None:
        """Persist the conversation's settings."""

    async def prune(self, older_than: float, *, limit: int) -> int:
        """Delete up to `limit` messages created before `older_than` (Unix time), oldest
        first; returns how many (0: nothing older is left). Conversations and their
        settings stay."""

    async def mark_interrupted(self) -> int:
        """Mark replies left STREAMING by a crash as INTERRUPTED; returns how many.

        Call once after `open()` and before serving, or live replies get marked too.
        """
