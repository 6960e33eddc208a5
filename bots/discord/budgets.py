"""Discord's allowances as shared EditBudgets: one per channel, one for the whole bot.

Discord limits message edits per channel (about 5 per 5 s) and every request of a bot
(50 per second, `PARLEY_DISCORD_REQUESTS_PER_SECOND`), whichever reply makes them, so every
sink of the process draws from the same budgets. Interaction webhooks (the token-scoped
`/webhooks/{app}/{token}` routes) have buckets of their own and are exempt from the bot-wide
limit: an interaction reply draws from a budget of its own instead (see `InteractionSink`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import SimpleNamespace

import aiohttp

from bots.calls import add_counter, discord_route
from core.budget import EditBudget
from core.retry import retry_after as read_retry_after

CHANNEL_EDITS = 5
CHANNEL_WINDOW = 5.0
MAX_IDLE_CHANNELS = 4096
"""Past this many channel budgets, those with no reply streaming are dropped."""

_CHANNEL_PATH = re.compile(r"/channels/(\d+)/messages")


class DiscordBudgets:
    """The budgets every Discord sink of one process shares."""

    def __init__(self, requests_per_second: int) -> None:
        self.bot: EditBudget | None = (
            EditBudget(
                "discord:bot",
                calls=requests_per_second,
                per=1.0,
                reserve=requests_per_second // 5,  # posts and finals of replies yet to start
            )
            if requests_per_second > 0
            else None  # 0 turns the bot-wide budget off (a raised limit, or a fake)
        )
        self._channels: dict[int, EditBudget] = {}

    def channel(self, channel_id: int) -> EditBudget:
        """The edit budget of one channel (a thread and a DM are channels too)."""
        budget = self._channels.get(channel_id)
        if budget is None:
            if len(self._channels) >= MAX_IDLE_CHANNELS:
                self._forget_idle()
            budget = EditBudget(
                f"discord:channel:{channel_id}",
                calls=CHANNEL_EDITS,
                per=CHANNEL_WINDOW,
                reserve=1,  # a message completed at the 2,000-character limit needs it
            )
            self._channels[channel_id] = budget
        return budget

    def for_channel(self, channel_id: int) -> tuple[Sequence[EditBudget], Sequence[EditBudget]]:
        """(edit scopes, post scopes) of a channel message: edits count against the channel
        and the bot, posts against the bot only. Narrowest scope first."""
        edits = (self.channel(channel_id),)
        if self.bot is None:
            return edits, ()
        return (*edits, self.bot), (self.bot,)

    def rate_limited(self, *, channel_id: int | None, seconds: float, whole_bot: bool) -> None:
        """Discord answered 429: hold back every reply in that scope, not just the one that hit."""
        if whole_bot and self.bot is not None:
            self.bot.pause(seconds)
        if channel_id is not None and channel_id in self._channels:
            self._channels[channel_id].pause(seconds)

    def _forget_idle(self) -> None:
        for channel_id in [c for c, b in self._channels.items() if b.owed == 0]:
            del self._channels[channel_id]


def watch_rate_limits(budgets: DiscordBudgets) -> aiohttp.TraceConfig:
    """An aiohttp trace that tells `budgets` about each 429 discord.py meets.

    discord.py sleeps through a 429 inside the awaited call (the text is not lost, the reply
    is only delayed), so no sink ever sees it; this hook lets the other replies of the channel
    (or the bot) wait too instead of walking into the same limit.
    """
    trace = aiohttp.TraceConfig()

    async def on_request_end(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        if params.response.status != 429:
            return
        seconds = retry_after(params.response.headers)
        if seconds is None:
            return
        match = _CHANNEL_PATH.search(params.url.path)
        budgets.rate_limited(
            channel_id=int(match[1]) if match else None,
            seconds=seconds,
            whole_bot=is_global(params.response.headers),
        )

    trace.on_request_end.append(on_request_end)
    add_counter(trace, "discord", discord_route)
    return trace


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from a 429's headers (Discord's precise one first), or None."""
    return read_retry_after(headers, first=("X-RateLimit-Reset-After",))


def is_global(headers: Mapping[str, str]) -> bool:
    """Whether a 429 is the bot-wide limit rather than one route's or channel's."""
    return (
        headers.get("X-RateLimit-Global", "").lower() == "true"
        or headers.get("X-RateLimit-Scope", "").lower() == "global"
    )
