"""Memory of turns: every store call the engine makes, each turn's in its order.

A conversation turn (`Transcript`): the user's message and the reply's row are written in
one batch while the context window is read (one round trip before the model is asked;
nothing said is lost), the reply's text is checkpointed as the platform shows it (so a crash
can be repaired there), and the reply is stored with its status at the end. A command turn
reads and changes the channel's settings (`Memory`), and a start-up repairs what a crash
left unfinished (`Memory.repairs`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from dataclasses import dataclass

import structlog

from core.errors import ParleyError
from core.memory import MemoryStore
from core.model import (
    ChannelSettings,
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
from core.streamer import PLACEHOLDER

CHECKPOINT_SECONDS = 5.0  # how often a streaming reply's text is saved, for crash recovery
CRASH_NOTE = "_(interrupted: parley restarted before this answer was finished. Ask again?)_"
SETTINGS_CACHE = 10_000  # conversations whose settings are kept in memory

log = structlog.get_logger(__name__)


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


class Memory:
    """The engine's one way into the store: channel settings (behind a bounded cache),
    forgetting, crash repairs, and each conversation turn's `Transcript`."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self._settings: OrderedDict[ConversationKey, ChannelSettings] = OrderedDict()

    async def settings(self, key: ConversationKey) -> ChannelSettings:
        """The channel's settings (defaults when never set)."""
        cached = self._settings.get(key)
        if cached is not None:
            self._settings.move_to_end(key)
            return cached
        loaded = await self.store.settings(key)
        self._remember(key, loaded)
        return loaded

    async def save_settings(self, key: ConversationKey, settings: ChannelSettings) -> None:
        await self.store.save_settings(key, settings)
        self._remember(key, settings)

    async def forget(self, key: ConversationKey) -> int:
        """Forget the conversation's messages (its settings stay); returns how many."""
        return await self.store.reset(key)

    def transcript(self, turn: Turn, sink: ReplySink) -> Transcript:
        return Transcript(self.store, turn, sink)

    async def repairs(self, platform: str) -> list[Repair]:
        """Platform messages a crash left looking unfinished, with the text to show now
        (an unreadable reference is settled at once: nothing to fix on the platform)."""
        repairs = []
        for dangling in await self.store.dangling(platform):
            repair = repair_of(dangling)
            if repair is None:
                await self.store.settle_dangling(dangling.message_id)
            else:
                repairs.append(repair)
        return repairs

    async def repaired(self, repair: Repair) -> None:
        await self.store.settle_dangling(repair.message_id)

    def _remember(self, key: ConversationKey, value: ChannelSettings) -> None:
        self._settings[key] = value
        self._settings.move_to_end(key)
        while len(self._settings) > SETTINGS_CACHE:
            self._settings.popitem(last=False)


class Transcript:
    """One conversation turn's rows: `open()`, then the streamer's `shown()` reports, then
    `finish()` (and `save_later()` when the store failed)."""

    def __init__(self, store: MemoryStore, turn: Turn, sink: ReplySink) -> None:
        self._store = store
        self._turn = turn
        self._sink = sink
        self._reply_id: int | None = None
        self._next_checkpoint = 0.0
        self._pending: asyncio.Task[None] | None = None

    async def open(
        self, mine: StoredMessage, *, messages: int, token_budget: int
    ) -> list[StoredMessage]:
        """Persist the user's message and the reply's (empty, STREAMING) row while the
        newest earlier messages are read; returns those (this turn's own rows left out).

        A crash from here on leaves the reply STREAMING, and the next start marks it
        interrupted (and repairs its platform message, once one was shown)."""
        reply = StoredMessage(
            Role.ASSISTANT, "", 0, MessageStatus.STREAMING, request_id=self._turn.request_id
        )
        # Two more than asked for: the read may run after this turn's rows have committed.
        ids, loaded = await asyncio.gather(
            self._store.append_all(self._turn.key, [mine, reply]),
            self._store.window(self._turn.key, messages=messages + 2, token_budget=token_budget),
        )
        self._reply_id = ids[1]
        return [m for m in loaded if m.request_id != self._turn.request_id]

    def shown(self, ref: MessageRef, shown: str, text: str) -> None:
        """The streamer's report (core.streamer.ShownReport): checkpoint the reply where
        the platform shows it, at its first message, then at most every CHECKPOINT_SECONDS,
        so a crash loses little; one checkpoint in flight at a time."""
        now = time.monotonic()
        if now < self._next_checkpoint or (self._pending is not None and not self._pending.done()):
            return
        where = self._sink.describe(ref)
        if where is None or self._reply_id is None:
            return
        self._next_checkpoint = now + CHECKPOINT_SECONDS
        platform_ref = json.dumps({"ref": where, "shown": shown})
        self._pending = asyncio.create_task(self._checkpoint(self._reply_id, text, platform_ref))

    async def _checkpoint(self, reply_id: int, text: str, platform_ref: str) -> None:
        row = StoredMessage(
            Role.ASSISTANT,
            text,
            estimate_tokens(text),
            MessageStatus.STREAMING,
            request_id=self._turn.request_id,
        )
        try:
            await self._store.checkpoint(reply_id, row, platform_ref)
        except ParleyError as exc:  # the reply goes on; only crash recovery is weaker
            log.warning("checkpoint_failed", error=type(exc).__name__, detail=exc.detail)

    async def finish(self, answer: Answer) -> bool:
        """Store the reply with its status and usage; False when the store failed (then
        `save_later` keeps trying, so a restart never mistakes it for a crashed reply)."""
        assert self._reply_id is not None, "finish() before open()"
        try:
            if self._pending is not None:
                await asyncio.gather(self._pending, return_exceptions=True)
            await self._store.finish(self._reply_id, self._final_row(answer))
        except ParleyError as exc:
            log.error("reply_not_saved", error=type(exc).__name__, detail=exc.detail)
            return False
        return True

    async def save_later(self, answer: Answer, *, every: float = 2.0, attempts: int = 30) -> None:
        """Retry the final save in the background (the store was locked or failing)."""
        assert self._reply_id is not None, "save_later() before open()"
        for _ in range(attempts):
            await asyncio.sleep(every)
            try:
                await self._store.finish(self._reply_id, self._final_row(answer))
            except (ParleyError, RuntimeError):  # RuntimeError: the store closed meanwhile
                continue
            log.info("reply_saved_late", request_id=self._turn.request_id)
            return
        log.error("reply_never_saved", request_id=self._turn.request_id)

    def _final_row(self, answer: Answer) -> StoredMessage:
        tokens = answer.usage.completion_tokens if answer.usage else 0
        return StoredMessage(
            Role.ASSISTANT,
            answer.text,
            tokens or estimate_tokens(answer.text),
            status=answer.status,
            request_id=self._turn.request_id,
        )
