"""A turn's rows in memory: the user's message first, then the reply as it streams."""

from __future__ import annotations

import asyncio

import structlog

from core.errors import ParleyError
from core.memory import MemoryStore
from core.model import MessageStatus, Role, StoredMessage, Turn, estimate_tokens
from core.reply import Answer

log = structlog.get_logger(__name__)


class Transcript:
    """One turn's rows in memory: the user's message, then the reply as it streams."""

    def __init__(self, store: MemoryStore, turn: Turn) -> None:
        self._store = store
        self._turn = turn
        self._reply_id: asyncio.Task[int] | None = None
        self._pending: asyncio.Task[None] | None = None

    async def begin(self, mine: StoredMessage) -> None:
        await self._store.append(self._turn.key, mine)
        # The reply's row is written while the model is asked, not before: a crash leaves
        # it STREAMING, and the next start marks it interrupted.
        row = StoredMessage(
            Role.ASSISTANT, "", 0, MessageStatus.STREAMING, request_id=self._turn.request_id
        )
        self._reply_id = asyncio.create_task(self._store.append(self._turn.key, row))

    def checkpoint(self, text: str) -> None:
        """Save the text so far, unless the previous save is still on its way."""
        if self._reply_id is None or not self._reply_id.done() or self._reply_id.exception():
            return
        if self._pending is not None and not self._pending.done():
            return
        row = StoredMessage(
            Role.ASSISTANT,
            text,
            estimate_tokens(text),
            MessageStatus.STREAMING,
            request_id=self._turn.request_id,
        )
        self._pending = asyncio.create_task(self._store.finish(self._reply_id.result(), row))

    async def finish(self, answer: Answer) -> bool:
        """Store the reply with its status and usage; False when the store failed."""
        assert self._reply_id is not None
        tokens = answer.usage.completion_tokens if answer.usage else 0
        reply = StoredMessage(
            Role.ASSISTANT,
            answer.text,
            tokens or estimate_tokens(answer.text),
            status=answer.status,
            request_id=self._turn.request_id,
        )
        try:
            if self._pending is not None:
                await asyncio.gather(self._pending, return_exceptions=True)
            await self._store.finish(await self._reply_id, reply)
        except ParleyError as exc:
            log.error("reply_not_saved", error=type(exc).__name__, detail=exc.detail)
            return False
        return True
