"""The two Discord reply sinks: a reply to a message (mentions, DMs) and a slash command's reply.

Both show at most 2,000 characters per message (the streamer continues in new messages past
that), close a code fence a streaming message ends inside, and never let model output ping
anyone: every message and edit carries `AllowedMentions.none()` (`{"parse": []}`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import discord
import structlog

from bots.discord.budgets import DiscordBudgets
from core.budget import EditBudget, Priority, spending
from core.errors import PlatformRateLimited
from core.sink import Sign, SinkDefaults
from core.split import fence_state, render_open, split_text

log = structlog.get_logger(__name__)

MAX_CHARS = 2000
NO_PINGS = discord.AllowedMentions.none()
TOKEN_LIFETIME = 15 * 60.0
TOKEN_MARGIN = 1 / 15
"""An interaction's token lives 15 minutes; parley stops using it a minute (1/15) early."""
INTERACTION_EDITS = 5
INTERACTION_WINDOW = 2.0
"""Interaction webhooks allow about 5 calls per 2 s per interaction (discord-api-docs#2701)."""


@contextlib.contextmanager
def _rate_limits() -> Iterator[None]:
    """discord.py sleeps through short 429s itself; a long one (past its
    `max_ratelimit_timeout`) surfaces as the engine's PlatformRateLimited."""
    try:
        yield
    except discord.RateLimited as exc:
        raise PlatformRateLimited(exc.retry_after) from exc


class MessageSink(SinkDefaults):
    """Answers a mention or a DM: the first message replies to the trigger, the rest follow it."""

    max_chars = MAX_CHARS  # no aside: a mention has no ephemeral answer on Discord

    def __init__(
        self,
        channel: discord.PartialMessageable,
        budgets: DiscordBudgets,
        *,
        trigger: discord.Message | None = None,
    ) -> None:
        self._channel = channel
        self.edit_budgets, self.post_budgets = budgets.for_channel(channel.id)
        self._reference = (
            trigger.to_reference(fail_if_not_exists=False) if trigger is not None else None
        )

    async def post(self, text: str, *, sign: Sign | None = None) -> int:
        return await self._send(render_open(text))

    async def edit(self, ref: int, text: str, *, sign: Sign | None = None) -> None:
        with _rate_limits():
            await self._channel.get_partial_message(ref).edit(
                content=render_open(text), allowed_mentions=NO_PINGS
            )

    def describe(self, ref: int) -> str:
        """Where message `ref` lives, for repairing it after a crash (`repair_message`)."""
        return json.dumps({"channel": self._channel.id, "message": ref})

    async def notice(self, text: str) -> None:
        """A sentence as its own message (a command's answer, a refusal): a post like any
        other, so it waits for its slot in the bot's budget (80 `help`s at once draw no 429)."""
        for piece in _pieces(text):
            async with spending(self.post_budgets, Priority.FINAL):
                await self._send(piece)

    async def _send(self, content: str) -> int:
        kwargs: dict[str, Any] = {}
        if self._reference is not None:  # only the first message is a reply
            kwargs["reference"] = self._reference
        with _rate_limits():
            message = await self._channel.send(content, allowed_mentions=NO_PINGS, **kwargs)
        self._reference = None
        return message.id


async def repair_message(
    client: discord.Client, budgets: DiscordBudgets, where: str, text: str
) -> None:
    """Show `text` in the message a MessageSink described as `where` (within the channel's
    and the bot's budgets, like any edit)."""
    place = json.loads(where)
    channel = client.get_partial_messageable(int(place["channel"]))
    edits, _ = budgets.for_channel(channel.id)
    with _rate_limits():
        async with spending(edits, Priority.FINAL):
            await channel.get_partial_message(int(place["message"])).edit(
                content=render_open(text), allowed_mentions=NO_PINGS
            )


@dataclass
class _Shown:
    """One message of a slash command's reply, and where it lives now.

    A webhook message the token outlived stays as it is; the reply's text goes on in a
    channel message that shows what comes after `offset` (the text the old one shows).
    """

    kind: Literal["original", "followup", "channel"]
    message_id: int = 0
    body: str = ""  # the answer text it shows (before render_open); "" while it shows a sign
    offset: str = ""


class InteractionSink(SinkDefaults):
    """Answers a slash command: the first text fills the deferred @original, then followups.

    The deferral is already on its way when the engine starts (`deferred`); the first call
    waits for it. Interaction webhooks have buckets of their own and are exempt from the
    bot-wide limit, so the reply draws from a budget of its own (5 calls per 2 s), not from
    the channel's or the bot's. Once the token is about to expire, or if the deferral
    failed, the reply goes on as ordinary channel messages on the channel and bot budgets.
    """

    max_chars = MAX_CHARS  # no aside: its own budget is never crowded by other replies

    def __init__(
        self,
        interaction: discord.Interaction[Any],
        deferred: Awaitable[object],
        channel: discord.PartialMessageable,
        budgets: DiscordBudgets,
        *,
        ephemeral: bool = False,
        token_lifetime: float = TOKEN_LIFETIME,
    ) -> None:
        self._interaction = interaction
        self._deferred = asyncio.ensure_future(deferred)
        self._channel = channel
        own = EditBudget(
            f"discord:interaction:{interaction.id}",
            calls=INTERACTION_EDITS,
            per=INTERACTION_WINDOW,
        )
        self.edit_budgets: Sequence[EditBudget] = (own,)
        self.post_budgets: Sequence[EditBudget] = (own,)
        self._channel_edits, self._channel_posts = budgets.for_channel(channel.id)
        self._ephemeral = ephemeral
        self._usable_until = time.monotonic() + token_lifetime * (1 - TOKEN_MARGIN)
        self._original: _Shown | None = None
        self._warned = False

    async def post(self, text: str, *, sign: Sign | None = None) -> _Shown:
        if not await self._webhook_usable():
            shown = _Shown("channel")
            await self._show_in_channel(shown, text, sign)
            return shown
        if self._original is None:
            shown = _Shown("original")
            # The deferral already shows "parley is thinking…"; other signs are shown.
            if sign is None or sign.reason != "thinking":
                await self._edit_webhook(shown, text, sign)
            self._original = shown
            return shown
        with _rate_limits():
            message = await self._interaction.followup.send(
                render_open(text), wait=True, allowed_mentions=NO_PINGS, ephemeral=self._ephemeral
            )
        return _Shown("followup", message.id, "" if sign is not None else text)

    async def edit(self, ref: _Shown, text: str, *, sign: Sign | None = None) -> None:
        if ref.kind != "channel" and not await self._webhook_usable():
            # The token is about to expire: the rest goes on in a channel message.
            ref.kind, ref.message_id = "channel", 0
            ref.offset = ref.body
        if ref.kind == "channel":
            await self._show_in_channel(ref, text, sign)
        else:
            await self._edit_webhook(ref, text, sign)

    async def notice(self, text: str) -> None:
        for piece in _pieces(text):
            await self._notice(piece)

    async def announce(self, text: str) -> None:
        """A change of the channel's settings: a channel message everyone sees, and the
        command's own (perhaps ephemeral) answer says the same."""
        await self._show_in_channel(_Shown("channel"), text)
        await self.notice(text)

    # -- internals ----------------------------------------------------------------------
    async def _notice(self, text: str) -> None:
        if await self._webhook_usable():
            if self._original is None or not self._original.body:
                self._original = self._original or _Shown("original")
                await self._edit_webhook(self._original, text)
                return
            with _rate_limits():
                await self._interaction.followup.send(
                    text, allowed_mentions=NO_PINGS, ephemeral=self._ephemeral
                )
            return
        if self._ephemeral:
            log.warning("ephemeral_notice_dropped", reason="interaction token unusable")
            return  # an answer meant for one person never goes to the whole channel
        await self._show_in_channel(_Shown("channel"), text)

    async def _webhook_usable(self) -> bool:
        if time.monotonic() >= self._usable_until:
            return False
        try:
            await asyncio.shield(self._deferred)
        except asyncio.CancelledError:
            raise
        except Exception:
            if not self._warned:
                self._warned = True
                log.warning("interaction_defer_failed", exc_info=True)
            return False
        return True

    async def _edit_webhook(self, shown: _Shown, text: str, sign: Sign | None = None) -> None:
        content = render_open(text)
        with _rate_limits():
            if shown.kind == "original":
                await self._interaction.edit_original_response(
                    content=content, allowed_mentions=NO_PINGS
                )
            else:
                await self._interaction.followup.edit_message(
                    shown.message_id, content=content, allowed_mentions=NO_PINGS
                )
        shown.body = "" if sign is not None else text

    async def _show_in_channel(self, shown: _Shown, text: str, sign: Sign | None = None) -> None:
        """Post or edit the channel message that carries this part of the reply.

        These calls are rare (a reply streaming for 14 minutes, or a failed deferral), so
        they wait their turn on the channel and bot budgets here rather than in the streamer.
        """
        content = render_open(_after(text, shown.offset))
        if not content.strip():
            return  # nothing yet beyond what the old message shows
        with _rate_limits():
            if shown.message_id == 0:
                async with spending(self._channel_posts, Priority.FIRST):
                    message = await self._channel.send(content, allowed_mentions=NO_PINGS)
                shown.message_id = message.id
            else:
                async with spending(self._channel_edits, Priority.FIRST):
                    await self._channel.get_partial_message(shown.message_id).edit(
                        content=content, allowed_mentions=NO_PINGS
                    )
        shown.body = "" if sign is not None else text


def _pieces(text: str) -> list[str]:
    """A notice longer than one message (a long system prompt shown back) in parts."""
    return [piece.text for piece in split_text(text, MAX_CHARS)] or [text]


def _after(text: str, offset: str) -> str:
    """The part of `text` after `offset`, reopening a code fence `offset` ends inside."""
    if not offset or not text.startswith(offset):
        return text
    rest = text[len(offset) :]
    fence = fence_state(offset)
    return f"{fence}\n{rest}" if fence is not None and rest.strip() else rest
