"""A turn's rows in memory: the user's message first, then the reply as it streams."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

import structlog

from core.errors import ParleyError
from core.memory import MemoryStore
from core.model import (
    ConversationKey,
    DanglingReply,
    MessageStatus,
    Role,
    StoredMessage,
    Turn,
    estimate_tokens,
)
from core.reply import Answer
from core.sink import MessageRef, ReplySink
from core.streamer import PLACEHOLDER, Streamer

CHECKPOINT_SECONDS = 5.0  # how often a streaming reply's text is saved, for crash recovery
CRASH_NOTE = "_(interrupted: parley restarted before this answer was finished. Ask again?)_"


@dataclass(frozen=True, slots=True)
class Repair:
    """A platform message a crash left unfinished, and the text it should show now."""

    message_id: int
    key: ConversationKey
    ref: str  # what the front door's sink.describe() returned
    text: str


def repair_of(dangling: DanglingReply) -> Repair | None:
    """The repair for a dangling reply (None when its reference is unreadable)."""
    try:
        saved = json.loads(dangling.platform_ref)
        ref, shown = str(saved["ref"]), str(saved["shown"])
    except (ValueError, KeyError, TypeError):
        return None
    shown = "" if shown == PLACEHOLDER else shown
    text = f"{shown}\n\n{CRASH_NOTE}" if shown.strip() else CRASH_NOTE
    return Repair(dangling.message_id, dangling.key, ref, text)


log = structlog.get_logger(__name__)


class Transcript:
    """One turn's rows in memory: the user's message, then the reply as it streams."""

    def __init__(self, store: MemoryStore, turn: Turn) -> None:
        self._store = store
        self._turn = turn
        self._reply_id: asyncio.Task[int] | None = None
        self._pending: asyncio.Task[None] | None = None

    async def begin(self, mine: StoredMessage) -> None:
        """Persist the user's message (before the upstream call: nothing said is lost)."""
        await self._store.append(self._turn.key, mine)

    def open_reply(self) -> None:
        """Write the reply's row while the model is asked, not before: a crash leaves it
        STREAMING, and the next start marks it interrupted. Call it after the context
        window is loaded, so the window never holds this turn's own (empty) reply."""
        row = StoredMessage(
            Role.ASSISTANT, "", 0, MessageStatus.STREAMING, request_id=self._turn.request_id
        )
        self._reply_id = asyncio.create_task(self._store.append(self._turn.key, row))

    def watch(self, streamer: Streamer, sink: ReplySink) -> None:
        """Checkpoint the reply as the platform shows it: at its first message, then at most
        every CHECKPOINT_SECONDS, so a crash loses little and can be repaired on the
        platform at the next start (see Engine.repairs)."""
        next_due = 0.0

        def shown(ref: MessageRef, text: str) -> None:
            nonlocal next_due
            now = time.monotonic()
            if now < next_due or (self._pending is not None and not self._pending.done()):
                return
            where = sink.describe(ref)
            if where is None:
                return
            next_due = now + CHECKPOINT_SECONDS
            platform_ref = json.dumps({"ref": where, "shown": text})
            self._pending = asyncio.create_task(self._checkpoint(streamer.text, platform_ref))

        streamer.observer = shown

    async def _checkpoint(self, text: str, platform_ref: str) -> None:
        assert self._reply_id is not None
        row = StoredMessage(
            Role.ASSISTANT,
            text,
            estimate_tokens(text),
            MessageStatus.STREAMING,
            request_id=self._turn.request_id,
        )
        try:
            await self._store.checkpoint(await self._reply_id, row, platform_ref)
        except ParleyError as exc:  # the reply goes on; only crash recovery is weaker
            log.warning("checkpoint_failed", error=type(exc).__name__, detail=exc.detail)

    async def finish(self, answer: Answer) -> bool:
        """Store the reply with its status and usage; False when the store failed (then
        `save_later` keeps trying, so a restart never mistakes it for a crashed reply)."""
        try:
            if self._pending is not None:
                await asyncio.gather(self._pending, return_exceptions=True)
            await self._store.finish(await self._reply_id_now(), self._final_row(answer))
        except ParleyError as exc:
            log.error("reply_not_saved", error=type(exc).__name__, detail=exc.detail)
            return False
        return True

    async def save_later(self, answer: Answer, *, every: float = 2.0, attempts: int = 30) -> None:
        """Retry the final save in the background (the store was locked or failing)."""
        for _ in range(attempts):
            await asyncio.sleep(every)
            try:
                await self._store.finish(await self._reply_id_now(), self._final_row(answer))
            except (ParleyError, RuntimeError):  # RuntimeError: the store closed meanwhile
                continue
            log.info("reply_saved_late", request_id=self._turn.request_id)
            return
        log.error("reply_never_saved", request_id=self._turn.request_id)

    async def _reply_id_now(self) -> int:
        assert self._reply_id is not None
        return await self._reply_id

    def _final_row(self, answer: Answer) -> StoredMessage:
        tokens = answer.usage.completion_tokens if answer.usage else 0
        return StoredMessage(
            Role.ASSISTANT,
            answer.text,
            tokens or estimate_tokens(answer.text),
            status=answer.status,
            request_id=self._turn.request_id,
        )
