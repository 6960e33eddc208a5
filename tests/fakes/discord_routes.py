"""The fake Discord's REST endpoints (the ones parley and discord.py call), and its records."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fakes import discord_payloads as p

if TYPE_CHECKING:
    from tests.fakes.discord import FakeDiscord

MAX_CONTENT = 2000
LOADING = 128  # message flag: "parley is thinking…"
EPHEMERAL = 64
GUILD_CHANNELS = {p.CHANNEL_ID, p.OTHER_CHANNEL_ID, p.THREAD_ID}


@dataclass
class Call:
    """One REST request as the fake saw it."""

    method: str
    path: str  # without the /api/v10 prefix
    query: dict[str, str]
    body: Any  # parsed JSON, or None
    at: float  # time.monotonic()
    status: int = 0


@dataclass
class FakeMessage:
    """A message as it stands now; `history` holds every content it has shown."""

    id: int
    channel_id: int
    guild_id: int | None
    author_id: int
    content: str
    kind: str  # "user" | "channel" | "original" | "followup"
    reference: int | None = None
    flags: int = 0
    token: str | None = None  # the interaction's, for @original and followups
    history: list[str] = field(default_factory=list)


@dataclass
class FakeInteraction:
    """An injected interaction and how parley answered it."""

    id: int
    token: str
    channel_id: int
    guild_id: int | None
    created: float  # time.monotonic()
    callback_type: int | None = None
    callback_flags: int = 0
    choices: list[dict[str, Any]] | None = None


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """JSON with `Content-Type: application/json` exactly (no charset), as discord.py insists."""
    return web.Response(
        body=json.dumps(body).encode(),
        status=status,
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


def error(status: int, message: str, code: int) -> web.Response:
    return json_response({"message": message, "code": code}, status)


Handler = Callable[..., web.Response]


class RestRoutes:
    """Answers REST calls against the fake's state."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        app, token, guild = r"(?P<app>\d+)", r"(?P<token>[^/]+)", r"(?P<guild>\d+)"
        hook = rf"/webhooks/{app}/{token}/messages/(?P<mid>@original|\d+)"
        # (method, path, handler, needs the bot token)
        table: list[tuple[str, str, Handler, bool]] = [
            ("GET", r"/users/@me", self._me, True),
            ("GET", r"/oauth2/applications/@me", self._application, True),
            ("GET", r"/gateway/bot", self._gateway_bot, True),
            ("PUT", rf"/applications/{app}/commands", self._put_commands, True),
            ("GET", rf"/applications/{app}/commands", self._get_commands, True),
            ("PUT", rf"/applications/{app}/guilds/{guild}/commands", self._put_commands, True),
            ("GET", rf"/applications/{app}/guilds/{guild}/commands", self._get_commands, True),
            ("POST", rf"/interactions/(?P<iid>\d+)/{token}/callback", self._callback, False),
            ("PATCH", hook, self._hook, False),
            ("GET", hook, self._hook, False),
            ("POST", rf"/webhooks/{app}/{token}", self._followup, False),
            ("POST", r"/channels/(?P<cid>\d+)/messages", self._create, True),
            ("PATCH", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)", self._edit, True),
            ("POST", r"/channels/(?P<cid>\d+)/typing", self._typing, True),
        ]
        self._table = [(m, re.compile(path), h, auth) for m, path, h, auth in table]

    async def answer(self, call: Call, headers: Mapping[str, str]) -> web.Response:
        for method, pattern, handler, auth in self._table:
            match = pattern.fullmatch(call.path)
            if method != call.method or match is None:
                continue
            if auth and headers.get("Authorization") != f"Bot {self.fake.token}":
                return error(401, "401: Unauthorized", 0)
            return handler(call, **match.groupdict())
        return error(404, "404: Not Found", 0)

    # -- identity -------------------------------------------------------------------------
    def _me(self, call: Call) -> web.Response:
        return json_response({**p.user(p.BOT_ID), "verified": True, "mfa_enabled": False})

    def _application(self, call: Call) -> web.Response:
        return json_response(p.application())

    def _gateway_bot(self, call: Call) -> web.Response:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return json_response(
            {"url": self.fake.gateway_url, "shards": 1, "session_start_limit": limit}
        )

    # -- commands -------------------------------------------------------------------------
    def _put_commands(self, call: Call, app: str, guild: str | None = None) -> web.Response:
        scope = guild or "global"
        stored = [
            {
                **command,
                "id": str(p.snowflake()),
                "application_id": app,
                "version": str(p.snowflake()),
                "type": command.get("type", 1),
                **({"guild_id": guild} if guild else {}),
            }
            for command in call.body or []
        ]
        self.fake.commands[scope] = stored
        self.fake.command_syncs.append(scope)
        return json_response(stored)

    def _get_commands(self, call: Call, app: str, guild: str | None = None) -> web.Response:
        return json_response(self.fake.commands.get(guild or "global", []))

    # -- interactions ---------------------------------------------------------------------
    def _callback(self, call: Call, iid: str, token: str) -> web.Response:
        record = self.fake.interactions.get(int(iid))
        if record is None or record.token != token:
            return error(404, "Unknown interaction", 10062)
        if record.callback_type is not None:
            return error(400, "Interaction has already been acknowledged.", 40060)
        if call.at - record.created > 3.0:
            return error(404, "Unknown interaction", 10062)  # not answered within 3 s
        kind = int(call.body["type"])
        data = call.body.get("data") or {}
        record.callback_type = kind
        record.callback_flags = int(data.get("flags", 0))
        if kind == 8:
            record.choices = data.get("choices", [])
            return web.Response(status=204)
        if kind not in (4, 5):
            return error(400, "Invalid interaction response type", 50035)
        content = data.get("content", "") if kind == 4 else ""
        flags = record.callback_flags | (LOADING if kind == 5 else 0)
        original = self._new(record.channel_id, record.guild_id, content, "original", flags=flags)
        original.token = record.token
        return json_response(
            {
                "interaction": {
                    "id": iid,
                    "type": 2,
                    "response_message_id": str(original.id),
                    "response_message_loading": kind == 5,
                    "response_message_ephemeral": bool(flags & EPHEMERAL),
                },
                "resource": {"type": kind, "message": self._payload(original)},
            }
        )

    def _hook(self, call: Call, app: str, token: str, mid: str) -> web.Response:
        record, refused = self._interaction(call, token)
        if record is None:
            return refused
        found = [
            m
            for m in self.fake.messages.values()
            if m.token == token
            and (m.kind == "original" if mid == "@original" else m.id == int(mid))
        ]
        if not found:
            return error(404, "Unknown Message", 10008)
        message = found[0]
        if call.method == "PATCH":
            bad = self._update(message, call.body)
            if bad is not None:
                return bad
        return json_response(self._payload(message, edited=call.method == "PATCH"))

    def _followup(self, call: Call, app: str, token: str) -> web.Response:
        record, refused = self._interaction(call, token)
        if record is None:
            return refused
        if record.callback_type is None:
            return error(404, "Unknown Webhook", 10015)  # followups come after the response
        content = (call.body or {}).get("content") or ""
        bad = _check_content(content)
        if bad is not None:
            return bad
        flags = int((call.body or {}).get("flags") or 0)
        message = self._new(record.channel_id, record.guild_id, content, "followup", flags=flags)
        message.token = token
        if call.query.get("wait") in ("1", "true", "True"):
            return json_response(self._payload(message))
        return web.Response(status=204)

    def _interaction(self, call: Call, token: str) -> tuple[FakeInteraction | None, web.Response]:
        for record in self.fake.interactions.values():
            if record.token == token:
                if call.at - record.created > self.fake.token_lifetime:
                    return None, error(401, "Invalid Webhook Token", 50027)
                return record, web.Response(status=200)
        return None, error(404, "Unknown Webhook", 10015)

    # -- channel messages -----------------------------------------------------------------
    def _create(self, call: Call, cid: str) -> web.Response:
        body = call.body or {}
        content = body.get("content") or ""
        bad = _check_content(content)
        if bad is not None:
            return bad
        channel_id = int(cid)
        guild_id = p.GUILD_ID if channel_id in GUILD_CHANNELS else None
        reference = (body.get("message_reference") or {}).get("message_id")
        message = self._new(
            channel_id,
            guild_id,
            content,
            "channel",
            reference=int(reference) if reference else None,
        )
        return json_response(self._payload(message))

    def _edit(self, call: Call, cid: str, mid: str) -> web.Response:
        message = self.fake.messages.get(int(mid))
        if message is None or message.channel_id != int(cid):
            return error(404, "Unknown Message", 10008)
        if message.author_id != p.BOT_ID:
            return error(403, "Cannot edit a message authored by another user", 50005)
        bad = self._update(message, call.body)
        if bad is not None:
            return bad
        return json_response(self._payload(message, edited=True))

    def _typing(self, call: Call, cid: str) -> web.Response:
        return web.Response(status=204)

    # -- state ----------------------------------------------------------------------------
    def _new(
        self,
        channel_id: int,
        guild_id: int | None,
        content: str,
        kind: str,
        *,
        flags: int = 0,
        reference: int | None = None,
    ) -> FakeMessage:
        message = FakeMessage(
            p.snowflake(), channel_id, guild_id, p.BOT_ID, content, kind, reference, flags
        )
        message.history.append(content)
        self.fake.messages[message.id] = message
        return message

    def _update(self, message: FakeMessage, body: Any) -> web.Response | None:
        if isinstance(body, dict) and "content" in body:
            content = body["content"] or ""
            bad = _check_content(content, allow_empty=message.kind != "channel")
            if bad is not None:
                return bad
            message.content = content
            message.history.append(content)
            message.flags &= ~LOADING
        return None

    def _payload(self, message: FakeMessage, *, edited: bool = False) -> dict[str, Any]:
        return p.message(
            message.id,
            message.channel_id,
            message.author_id,
            message.content,
            guild_id=message.guild_id,
            reference=message.reference,
            flags=message.flags,
            webhook_id=p.APP_ID if message.token else None,
            edited=edited,
        )


def _check_content(content: str, *, allow_empty: bool = False) -> web.Response | None:
    if len(content) > MAX_CONTENT:
        return error(400, "Invalid Form Body (content: Must be 2000 or fewer in length.)", 50035)
    if not content.strip() and not allow_empty:
        return error(400, "Cannot send an empty message", 50006)
    return None
