"""Slack ReplySinks: how the engine's Streamer shows a reply in a thread or a DM.

One `chat.postMessage` per message, then `chat.update` with the newest text; every call
counts against shared budgets, because Slack limits `chat.update` per workspace (Tier 3,
about 50 a minute for every reply streaming there) and `chat.postMessage` per channel (about
one a second). A 429 that still comes is raised as PlatformRateLimited so the streamer
pauses the whole scope: these calls go through a client without slack_sdk's rate-limit
retry handler, which would sleep inside the call and then resend a frame that is stale by then.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.render import MAX_CHARS, to_markdown_text, to_mrkdwn
from core.budget import EditBudget, Priority, spending
from core.errors import PlatformRateLimited
from core.retry import retry_after
from core.sink import Sign, SinkDefaults

log = structlog.get_logger(__name__)

UPDATE_WINDOW = 60.0
TIER4_PER_TIER3 = 2  # Slack's Tier 4 (chat.postEphemeral) allows 100+ a minute, Tier 3 50+
POST_CALLS, POST_WINDOW = 3, 3.0  # chat.postMessage: ~1/s per channel with a burst of three
NOTICE_ATTEMPTS = 30  # 429s ridden out before a sentence is given up (as for replies)
DEFAULT_RETRY_AFTER = 1.0


class SlackBudgets:
    """The allowances one front door shares among its replies: `chat.update` per workspace
    (PARLEY_SLACK_UPDATES_PER_MINUTE, none when 0), `chat.postEphemeral` per workspace (Tier
    4: twice Tier 3's) and `chat.postMessage` per channel."""

    def __init__(self, updates_per_minute: int, *, max_channels: int = 4096) -> None:
        self._updates_per_minute = updates_per_minute
        self._max_channels = max_channels
        self._updates: dict[str, EditBudget] = {}
        self._ephemerals: dict[str, EditBudget] = {}
        self._posts: OrderedDict[tuple[str, str], EditBudget] = OrderedDict()

    def ephemerals(self, team: str) -> tuple[EditBudget, ...]:
        """The workspace's `chat.postEphemeral` budget (Tier 4; empty when turned off)."""
        calls = TIER4_PER_TIER3 * self._updates_per_minute
        return self._workspace(self._ephemerals, team, "chat.postEphemeral", calls, reserve=0)

    def edits(self, team: str) -> tuple[EditBudget, ...]:
        """The workspace's `chat.update` budget (empty when turned off); a fifth is kept for
        the finals of replies yet to start."""
        calls = self._updates_per_minute
        return self._workspace(self._updates, team, "chat.update", calls, reserve=calls // 5)

    def _workspace(
        self, budgets: dict[str, EditBudget], team: str, method: str, calls: int, *, reserve: int
    ) -> tuple[EditBudget, ...]:
        if self._updates_per_minute <= 0:
            return ()
        budget = budgets.get(team)
        if budget is None:
            budget = budgets[team] = EditBudget(
                f"slack:{team}:{method}", calls=calls, per=UPDATE_WINDOW, reserve=reserve
            )
        return (budget,)

    def posts(self, team: str, channel: str) -> tuple[EditBudget, ...]:
        """The channel's `chat.postMessage` budget; least recently used channels are dropped."""
        key = (team, channel)
        budget = self._posts.get(key)
        if budget is None:
            budget = EditBudget(
                f"slack:{team}:{channel}:chat.postMessage", calls=POST_CALLS, per=POST_WINDOW
            )
            self._posts[key] = budget
            while len(self._posts) > self._max_channels:
                self._posts.popitem(last=False)
        self._posts.move_to_end(key)
        return (budget,)


def rate_limited(exc: SlackApiError) -> PlatformRateLimited | None:
    """PlatformRateLimited for an HTTP 429 (with Slack's Retry-After seconds), else None."""
    response = exc.response
    if getattr(response, "status_code", None) != 429:
        return None
    headers: Any = getattr(response, "headers", None) or {}
    wait = retry_after(headers)
    return PlatformRateLimited(DEFAULT_RETRY_AFTER if wait is None else wait)


class SlackSink(SinkDefaults):
    """Posts and edits one reply's messages in one conversation (a thread, or a DM)."""

    def __init__(
        self,
        client: AsyncWebClient,
        channel: str,
        *,
        thread_ts: str | None,
        user: str = "",
        post_budgets: Sequence[EditBudget] = (),
        edit_budgets: Sequence[EditBudget] = (),
        aside_budgets: Sequence[EditBudget] = (),
        max_chars: int = MAX_CHARS,
    ) -> None:
        self.max_chars = max_chars
        self.post_budgets = post_budgets
        self.edit_budgets = edit_budgets
        self._aside_budgets = aside_budgets
        self._client = client
        self._channel = channel
        self._thread_ts = thread_ts
        self._user = user
        self._sign_ts: str | None = None  # the message showing a sign (no answer yet), if any

    async def post(self, text: str, *, sign: Sign | None = None) -> str:
        """Post a new message (in the thread, if any); returns its ts."""
        try:
            response = await self._client.chat_postMessage(
                channel=self._channel,
                thread_ts=self._thread_ts,
                markdown_text=to_markdown_text(text),
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            raise rate_limited(exc) or exc from None
        ts = str(response["ts"])
        self._sign_ts = ts if sign is not None else None
        return ts

    async def edit(self, ref: str, text: str, *, sign: Sign | None = None) -> None:
        """Show `text` in message `ref` instead of what it showed."""
        try:
            await self._client.chat_update(
                channel=self._channel, ts=ref, markdown_text=to_markdown_text(text)
            )
        except SlackApiError as exc:
            raise rate_limited(exc) or exc from None
        if sign is not None:
            self._sign_ts = ref
        elif self._sign_ts == ref:
            self._sign_ts = None

    def describe(self, ref: str) -> str:
        """Where message `ref` lives, for repairing it after a crash (`repair_message`)."""
        return json.dumps({"channel": self._channel, "ts": ref})

    async def aside(self, text: str) -> None:
        """An ephemeral to the asker, in the thread: `chat.postEphemeral` counts against its
        own Tier 4 budget, not chat.update's, and leaves nothing in the thread."""
        async with spending(self._aside_budgets, Priority.FIRST):
            try:
                await self._client.chat_postEphemeral(
                    channel=self._channel,
                    user=self._user,
                    thread_ts=self._thread_ts,
                    markdown_text=to_markdown_text(text),
                )
            except SlackApiError as exc:
                raise rate_limited(exc) or exc from None

    async def announce(self, text: str) -> None:
        """In a thread or a DM a notice is already seen by all there."""
        await self.notice(text)

    async def notice(self, text: str) -> None:
        """A sentence in the conversation: into the message showing a sign if there is one
        (a turn that failed before its first words), else a new message."""
        for _ in range(NOTICE_ATTEMPTS):
            waiting = self._sign_ts
            budgets = self.edit_budgets if waiting else self.post_budgets
            try:
                async with spending(budgets, Priority.FINAL):
                    if waiting:
                        await self.edit(waiting, text)
                    else:
                        await self.post(text)
                return
            except PlatformRateLimited as exc:
                if budgets:
                    budgets[0].pause(exc.retry_after)
                await asyncio.sleep(exc.retry_after)
        log.warning("slack_notice_dropped", channel=self._channel)


async def repair_message(
    client: AsyncWebClient, budgets: Sequence[EditBudget], where: str, text: str
) -> None:
    """Show `text` in the message a SlackSink described as `where`, within the workspace's
    `chat.update` budget (`budgets`), like any edit."""
    place = json.loads(where)
    async with spending(budgets, Priority.FINAL):
        await client.chat_update(
            channel=place["channel"], ts=place["ts"], markdown_text=to_markdown_text(text)
        )


class EphemeralSink(SinkDefaults):
    """Answers to a /parley command, shown only to the person who typed it.

    A slash turn is always a command (its text starts with "/"), so the engine only ever calls
    `notice`; `post` answers ephemerally too, and `edit` has nothing to edit (Slack does not
    let an app edit an ephemeral message).
    """

    max_chars = MAX_CHARS

    def __init__(
        self,
        client: AsyncWebClient,
        session: aiohttp.ClientSession,
        *,
        channel: str,
        user: str,
        response_url: str | None,
        post_budgets: Sequence[EditBudget] = (),
        channel_posts: Sequence[EditBudget] = (),
    ) -> None:
        self.post_budgets = post_budgets  # the workspace's chat.postEphemeral budget
        self._channel_posts = channel_posts  # the channel's chat.postMessage budget
        self._client = client
        self._session = session
        self._channel = channel
        self._user = user
        self._response_url = response_url

    async def post(self, text: str, *, sign: Sign | None = None) -> None:
        if sign is None:
            await self.notice(text)

    async def announce(self, text: str) -> None:
        """A change of the channel's settings, posted in the channel for everyone."""
        async with spending(self._channel_posts, Priority.FINAL):
            await self._client.chat_postMessage(
                channel=self._channel, markdown_text=to_markdown_text(text)
            )

    async def edit(self, ref: object, text: str, *, sign: Sign | None = None) -> None:
        return None

    async def notice(self, text: str) -> None:
        """`chat.postEphemeral`; where the bot is not in the channel, the command's
        response_url (which Slack hands us for exactly this) instead."""
        try:
            async with spending(self.post_budgets, Priority.FINAL):
                await self._client.chat_postEphemeral(
                    channel=self._channel, user=self._user, markdown_text=to_markdown_text(text)
                )
            return
        except SlackApiError as exc:
            if not self._response_url:
                raise
            log.info("slack_ephemeral_fallback", error=exc.response.get("error"))
        body = {"response_type": "ephemeral", "text": to_mrkdwn(text)}
        async with self._session.post(self._response_url, json=body) as response:
            if response.status >= 400:  # not raise_for_status(): its message holds the URL,
                raise RuntimeError(  # a credential for half an hour
                    f"Slack's response_url answered HTTP {response.status}"
                )
