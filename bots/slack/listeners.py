"""What parley does with each Slack event and /parley command.

Listeners return at once (bolt acknowledges events before they run; commands are acked
first thing): each turn is handed to the engine as its own task, in arrival order, and the
engine's lane keeps a conversation's turns in that order. Between an event and the engine
nothing is awaited: no `auth.test`, names only from a cache that users.info fills in the
background (a name not known yet shows as the raw id this once), and whether the author is
a workspace admin is asked by the engine only for a command that changes the channel.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import structlog
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bots.kit import Turns
from bots.slack.events import (
    PLATFORM,
    BotIdentity,
    Incoming,
    SeenCache,
    incoming,
    mentioned_users,
    prompt_text,
)
from bots.slack.names import Person, UserNames
from bots.slack.sink import EphemeralSink, SlackBudgets, SlackSink
from core.engine import Engine
from core.model import ConversationKey, Turn

log = structlog.get_logger(__name__)

COMMAND = "/parley"
ADMIN_TIMEOUT = 3.0  # seconds a settings command may wait to learn whether its author is admin
MAX_LOOKUPS = 10  # names looked up for one message at the most


class SlackListeners:
    """Turns Slack events into engine turns, once each, in order per conversation."""

    def __init__(
        self,
        engine: Engine,
        me: BotIdentity,
        *,
        api: AsyncWebClient,
        stream_api: AsyncWebClient,
        session: aiohttp.ClientSession,
        budgets: SlackBudgets,
    ) -> None:
        self._engine = engine
        self._me = me
        self._api = api
        self._stream_api = stream_api
        self._session = session
        self._budgets = budgets
        self._seen = SeenCache()
        self._names = UserNames(self._person)
        self._turns = Turns(PLATFORM)

    def register(self, app: AsyncApp) -> None:
        """Attach the listeners to a bolt app."""
        app.event("app_mention")(self.on_event)
        app.event("message")(self.on_event)
        app.command(COMMAND)(self.on_command)

    # -- bolt listeners: quick, never wait for Slack or the model ---------------------------
    async def on_event(self, body: dict[str, Any]) -> None:
        """An `app_mention` or `message` event (already acknowledged by bolt)."""
        message = incoming(body, self._me)
        if message is None:
            return
        event_key = ("event", message.event_id) if message.event_id else None
        if not self._seen.first_time((event_key, ("message", message.channel, message.ts))):
            log.debug("slack_duplicate_event", event_id=message.event_id, ts=message.ts)
            return
        self._turns.spawn(self._answer(message))

    async def on_command(self, ack: Callable[[], Awaitable[Any]], command: dict[str, Any]) -> None:
        """`/parley …`: acknowledge within Slack's 3 seconds, answer ephemerally after; a
        command Slack (or anyone replaying its signed request) sends again is answered once."""
        await ack()
        trigger = command.get("trigger_id")
        if trigger and not self._seen.first_time((("trigger", str(trigger)),)):
            log.info("slack_duplicate_command")
            return
        self._turns.spawn(self._command(command))

    # -- turns ---------------------------------------------------------------------------
    async def _answer(self, message: Incoming) -> None:
        key = ConversationKey(PLATFORM, message.team_id, message.channel)
        users = mentioned_users(message.text, self._me)
        if self._engine.admits(key, message.user):
            # Looked up for a turn the rate limit lets through, and only so many: one
            # message naming 800 people must not become 800 calls to users.info.
            self._names.warm(users[:MAX_LOOKUPS])
        turn = Turn(
            key,
            message.user,
            prompt_text(message.text, self._me, self._names.known_of(users)),
            author_name=self._names.known(message.user) or "",
            admin=message.direct,  # in their own DM, a person changes what they like
            ask_admin=self._admin_check(message.user),
        )
        sink = SlackSink(
            self._stream_api,
            message.channel,
            thread_ts=message.thread_ts,
            user=message.user,
            post_budgets=self._budgets.posts(message.team_id, message.channel),
            edit_budgets=self._budgets.edits(message.team_id),
            aside_budgets=self._budgets.ephemerals(message.team_id),
        )
        await self._engine.handle(turn, sink)

    async def _command(self, command: dict[str, Any]) -> None:
        channel = str(command.get("channel_id") or "")
        user = str(command.get("user_id") or "")
        team = str(command.get("team_id") or self._me.team_id)
        words = prompt_text(str(command.get("text") or ""), self._me, {})
        text = "/" + words  # with the slash, every word is a command (unknown ones get help)
        turn = Turn(
            ConversationKey(PLATFORM, team, channel),
            user,
            text,
            author_name=str(command.get("user_name") or ""),
            admin=channel.startswith("D"),
            ask_admin=self._admin_check(user),
        )
        sink = EphemeralSink(
            self._api,
            self._session,
            channel=channel,
            user=user,
            response_url=command.get("response_url"),
            post_budgets=self._budgets.ephemerals(team),
            channel_posts=self._budgets.posts(team, channel),
        )
        await self._engine.handle(turn, sink)

    def _admin_check(self, user: str) -> Callable[[], Awaitable[bool]]:
        """Whether `user` is a workspace admin or owner, for the engine to ask (users.info,
        cached) when a command would change the channel."""

        async def check() -> bool:
            return await self._names.is_admin(user, timeout=ADMIN_TIMEOUT)

        return check

    async def _person(self, user: str) -> Person | None:
        response = await self._api.users_info(user=user)
        data = response.get("user") or {}
        profile = data.get("profile") or {}
        admin = any(data.get(flag) for flag in ("is_admin", "is_owner", "is_primary_owner"))
        for name in (
            profile.get("display_name"),
            profile.get("real_name"),
            data.get("real_name"),
            data.get("name"),
        ):
            if name:
                return Person(str(name), admin)
        return Person(None, admin)

    async def close(self, grace: float) -> None:
        """Let turns in flight finish for up to `grace` seconds, then cancel the rest."""
        await self._turns.close(grace)
        await self._names.close()
