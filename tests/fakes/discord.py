"""A Discord-compatible server on loopback: REST under /api/v10 and a gateway websocket.

The real discord.py talks to it unmodified: point `DISCORD_API_URL` at `api_url`; its
`GET /gateway/bot` announces `ws://127.0.0.1:PORT/gateway`. The gateway sends HELLO, answers
IDENTIFY with READY and GUILD_CREATE, ACKs heartbeats (plain-text JSON frames, which
discord.py accepts beside zlib ones), and lets a test inject MESSAGE_CREATE and
INTERACTION_CREATE. REST calls are recorded with their time and body, and the messages they
create or edit are kept, so a test can read what a person would see. `drop_gateway()` closes
the gateway as Discord does now and then; the client's RESUME (op 6) gets the dispatches it
missed and RESUMED, or INVALID_SESSION (`invalidate_resumes`) and then a fresh IDENTIFY.

Rate limits as Discord answers them (status 429, a `Via` header, a JSON body with
`retry_after`, `Content-Type: application/json` exactly — discord.py checks all three):
scripted ones for the next edits (`rate_limit_edits`), or the real limits enforced
(`enforce_limits`: 5 message edits per 5 s per channel, 50 requests per second per bot;
interaction endpoints are exempt from the bot-wide limit, as on Discord). `rate_limited`
counts the 429s sent. `fail()` scripts other error answers (one may echo the request's
Authorization header, as some proxies and servers do).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Self

from aiohttp import WSMsgType, web

from tests.fakes import discord_payloads as p
from tests.fakes.discord_routes import (
    Call,
    FakeInteraction,
    FakeMessage,
    RestRoutes,
    json_response,
)
from tests.fakes.loopback import serve

MESSAGE_CONTENT_INTENT = 1 << 15
INTERACTION_ACK_SECONDS = 3.0


class _Gateway:
    """One client's gateway connection."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.seq = 0
        self.ready = False
        self.session_id: str | None = None

    async def send(self, op: int, data: Any, event: str | None = None) -> None:
        seq = None
        if op == 0:
            self.seq += 1
            seq = self.seq
        await self.ws.send_str(json.dumps({"op": op, "d": data, "s": seq, "t": event}))


class FakeDiscord:
    """`async with FakeDiscord() as fake:`; then point discord.py at `fake.api_url`."""

    def __init__(
        self,
        *,
        token: str = "fake-bot-token",
        message_content_allowed: bool = True,
        token_lifetime: float = 15 * 60.0,
    ) -> None:
        self.token = token
        self.message_content_allowed = message_content_allowed
        self.token_lifetime = token_lifetime
        self.calls: list[Call] = []
        self.messages: dict[int, FakeMessage] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self.commands: dict[str, list[dict[str, Any]]] = {}  # "global" or guild id -> commands
        self.command_syncs: list[str] = []  # the scope of each PUT
        self.identifies: list[dict[str, Any]] = []
        self.gateway_queries: list[dict[str, str]] = []
        self.dispatched_at: dict[str, float] = {}  # payload id -> monotonic time first sent
        self.resumes: list[dict[str, Any]] = []  # RESUME (op 6) payloads, in arrival order
        self.invalidate_resumes = False  # answer RESUME with INVALID_SESSION (not resumable)
        self._session_seqs: dict[str, int] = {}  # last sequence number of each closed session
        self._missed: dict[str, list[tuple[str, dict[str, Any]]]] = {}  # dropped, not resumed
        self._resume_gate = asyncio.Event()
        self._resume_gate.set()
        self.rate_limited = 0
        self._failures: list[tuple[str, str, int, str]] = []  # scripted error answers
        self._scripted_429s: deque[tuple[float, int | None]] = deque()
        self._channel_limit: tuple[int, float] | None = None
        self._bot_limit: int | None = None
        self._edit_windows: dict[int, deque[float]] = {}
        self._bot_window: deque[float] = deque()
        self._gateways: list[_Gateway] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._sessions = 0
        self._routes = RestRoutes(self)

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/gateway"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner, self._port = await serve(app)

    async def stop(self) -> None:
        for gateway in list(self._gateways):
            await gateway.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- limits -----------------------------------------------------------------------------
    def rate_limit_edits(
        self, count: int, retry_after: float = 0.2, *, channel_id: int | None = None
    ) -> None:
        """Answer the next `count` message edits with 429: those in `channel_id` (a channel
        message's or an interaction reply's), or any."""
        self._scripted_429s.extend([(retry_after, channel_id)] * count)

    def fail(self, method: str, pattern: str, status: int, message: str, *, times: int = 1) -> None:
        """Answer the next `times` REST calls matching `method` and `pattern` (a regular
        expression for the path after /api/v10) with `status` and a JSON error saying
        `message`; "{authorization}" in it becomes the call's Authorization header, as a
        proxy or a server that echoes its request would answer."""
        self._failures.extend([(method, pattern, status, message)] * times)

    def enforce_limits(self, *, channel_edits: int = 5, per: float = 5.0, bot: int = 50) -> None:
        """Answer 429 past Discord's limits, as Discord does."""
        self._channel_limit = (channel_edits, per)
        self._bot_limit = bot

    # -- injecting events -------------------------------------------------------------------
    @property
    def connections(self) -> int:
        """Gateway connections open now."""
        return len(self._gateways)

    async def wait_connected(self, count: int = 1, timeout: float = 5.0) -> None:
        await self.until(lambda: sum(g.ready for g in self._gateways) >= count, timeout)

    async def drop_gateway(self, code: int = 4000, *, reason: bytes = b"") -> int:
        """Close every ready gateway connection, as Discord does now and then (4000: unknown
        error, "reconnect and resume"; 1000: a plain close). What is dispatched until the
        client resumes is replayed to it then. Returns how many connections were closed."""
        dropped = [g for g in self._gateways if g.ready]
        for gateway in dropped:
            gateway.ready = False
            if gateway.session_id is not None:
                self._session_seqs[gateway.session_id] = gateway.seq
                self._missed.setdefault(gateway.session_id, [])
            await gateway.ws.close(code=code, message=reason)
        return len(dropped)

    def hold_resumes(self) -> None:
        """Keep the next RESUMEs waiting (recorded in `resumes`) until `release_resumes()`."""
        self._resume_gate.clear()

    def release_resumes(self) -> None:
        self._resume_gate.set()

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a dispatch to every ready gateway connection."""
        if "id" in data:  # when it went out (a benchmark's "event delivered" moment)
            self.dispatched_at.setdefault(str(data["id"]), time.monotonic())
        for gateway in [g for g in self._gateways if g.ready]:
            await gateway.send(0, data, event)
        for missed in self._missed.values():  # replayed when the dropped session resumes
            missed.append((event, data))

    async def say(
        self,
        content: str,
        *,
        channel_id: int = p.CHANNEL_ID,
        author_id: int = p.USER_ID,
        dm: bool = False,
        reference: int | None = None,
    ) -> int:
        """A person (or bot) posts a message: MESSAGE_CREATE. Returns its id."""
        guild_id = None if dm else p.GUILD_ID
        if dm and channel_id == p.CHANNEL_ID:
            channel_id = p.DM_CHANNEL_ID
        mentions = [int(m) for m in re.findall(r"<@!?(\d+)>", content)]
        message_id = p.snowflake()
        self.messages[message_id] = FakeMessage(
            message_id, channel_id, guild_id, author_id, content, "user", reference
        )
        payload = p.message(
            message_id,
            channel_id,
            author_id,
            content,
            guild_id=guild_id,
            mentions=mentions,
            reference=reference,
        )
        await self.dispatch("MESSAGE_CREATE", payload)
        return message_id

    async def slash(
        self,
        name: str,
        options: dict[str, str] | None = None,
        *,
        channel_id: int = p.CHANNEL_ID,
        user_id: int = p.USER_ID,
        dm: bool = False,
        focused: str | None = None,
    ) -> FakeInteraction:
        """A person runs a slash command (or types in one of its options, with `focused`)."""
        guild_id = None if dm else p.GUILD_ID
        if dm and channel_id == p.CHANNEL_ID:
            channel_id = p.DM_CHANNEL_ID
        interaction_id = p.snowflake()
        record = FakeInteraction(
            interaction_id, f"itoken-{interaction_id}", channel_id, guild_id, time.monotonic()
        )
        self.interactions[interaction_id] = record
        data: dict[str, Any] = {
            "id": str(self._command_id(name)),
            "name": name,
            "type": 1,
            "options": [
                {"name": k, "type": 3, "value": v, **({"focused": True} if k == focused else {})}
                for k, v in (options or {}).items()
            ],
        }
        payload = p.interaction(
            interaction_id,
            record.token,
            kind=4 if focused else 2,
            data=data,
            channel_id=channel_id,
            guild_id=guild_id,
            user_id=user_id,
        )
        await self.dispatch("INTERACTION_CREATE", payload)
        return record

    # -- reading what people see ------------------------------------------------------------
    async def until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until `condition()` holds; it is checked after every call and connection."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(condition)

    def bot_messages(self, channel_id: int) -> list[FakeMessage]:
        """parley's messages in a channel (interaction replies included), oldest first."""
        return [
            m
            for m in self.messages.values()
            if m.channel_id == channel_id and m.author_id == p.BOT_ID and m.kind != "user"
        ]

    def reply(self, interaction: FakeInteraction) -> list[FakeMessage]:
        """An interaction's @original and followups, oldest first."""
        return [m for m in self.messages.values() if m.token == interaction.token]

    def of(self, method: str, pattern: str) -> list[Call]:
        """Calls whose path matches `pattern` (a regular expression)."""
        return [c for c in self.calls if c.method == method and re.fullmatch(pattern, c.path)]

    # -- REST -------------------------------------------------------------------------------
    async def _rest(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        call = Call(
            request.method,
            "/" + request.match_info["tail"],
            dict(request.query),
            body,
            time.monotonic(),
        )
        self.calls.append(call)
        response = (
            self._scripted_failure(call, request.headers)
            or self._limit(call)
            or await self._routes.answer(call, request.headers)
        )
        call.status = response.status
        async with self._changed:
            self._changed.notify_all()
        return response

    def _scripted_failure(self, call: Call, headers: Any) -> web.Response | None:
        for i, (method, pattern, status, message) in enumerate(self._failures):
            if method == call.method and re.fullmatch(pattern, call.path):
                del self._failures[i]
                echoed = message.replace("{authorization}", headers.get("Authorization", ""))
                return json_response({"message": echoed, "code": 0}, status)
        return None

    def _limit(self, call: Call) -> web.Response | None:
        if call.method == "PATCH" and "/messages/" in call.path and self._scripted_429s:
            retry_after, channel_id = self._scripted_429s[0]
            if channel_id is None or channel_id == self._edited_channel(call.path):
                self._scripted_429s.popleft()
                return self.too_many(retry_after, scope="user")
        now = call.at
        exempt = call.path.startswith(("/interactions/", "/webhooks/"))
        if self._bot_limit is not None and not exempt:
            wait = _hit(self._bot_window, now, self._bot_limit, 1.0)
            if wait:
                return self.too_many(wait, scope="global")
        match = re.fullmatch(r"/channels/(\d+)/messages/\d+", call.path)
        if self._channel_limit is not None and match and call.method == "PATCH":
            calls, per = self._channel_limit
            window = self._edit_windows.setdefault(int(match[1]), deque())
            wait = _hit(window, now, calls, per)
            if wait:
                return self.too_many(wait, scope="user", limit=calls)
        return None

    def too_many(self, retry_after: float, *, scope: str, limit: int = 5) -> web.Response:
        """A 429 as Discord sends it."""
        self.rate_limited += 1
        is_global = scope == "global"
        headers = {
            "Via": "1.1 google",
            "Retry-After": str(math.ceil(retry_after)),
            "X-RateLimit-Scope": scope,
        }
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        else:
            headers.update(
                {
                    "X-RateLimit-Limit": str(limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
                    "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                    "X-RateLimit-Bucket": "fake-bucket",
                }
            )
        body = {
            "message": "You are being rate limited.",
            "retry_after": round(retry_after, 3),
            "global": is_global,
        }
        return json_response(body, 429, headers)

    def _edited_channel(self, path: str) -> int | None:
        match = re.fullmatch(r"/channels/(\d+)/messages/\d+", path)
        if match:
            return int(match[1])
        match = re.fullmatch(r"/webhooks/\d+/([^/]+)/messages/.+", path)
        for record in self.interactions.values():
            if match and record.token == match[1]:
                return record.channel_id
        return None

    def _command_id(self, name: str) -> int:
        for commands in self.commands.values():
            for command in commands:
                if command["name"] == name:
                    return int(command["id"])
        return p.snowflake()

    # -- gateway ----------------------------------------------------------------------------
    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        gateway = _Gateway(ws)
        self._gateways.append(gateway)
        self.gateway_queries.append(dict(request.query))
        await gateway.send(10, {"heartbeat_interval": 41250})
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    await self._on_frame(gateway, json.loads(frame.data))
        finally:
            self._gateways.remove(gateway)
            if gateway.session_id is not None:  # resumable from where it stopped
                self._session_seqs[gateway.session_id] = gateway.seq
            async with self._changed:
                self._changed.notify_all()
        return ws

    async def _on_frame(self, gateway: _Gateway, frame: dict[str, Any]) -> None:
        op = frame.get("op")
        if op == 1:
            await gateway.send(11, None)
        elif op == 2:
            await self._identify(gateway, frame["d"])
        elif op == 6:
            await self._resume(gateway, frame["d"])

    async def _identify(self, gateway: _Gateway, data: dict[str, Any]) -> None:
        self.identifies.append(data)
        if data.get("token") != self.token:
            await gateway.ws.close(code=4004, message=b"Authentication failed.")
            return
        if data.get("intents", 0) & MESSAGE_CONTENT_INTENT and not self.message_content_allowed:
            await gateway.ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        self._sessions += 1
        gateway.session_id = f"fake-session-{self._sessions}"
        await gateway.send(0, p.ready(gateway.session_id, self.gateway_url), "READY")
        await gateway.send(0, p.guild(), "GUILD_CREATE")
        gateway.ready = True
        async with self._changed:
            self._changed.notify_all()

    async def _resume(self, gateway: _Gateway, data: dict[str, Any]) -> None:
        """RESUME: replay what the session missed, then RESUMED; or INVALID_SESSION."""
        self.resumes.append(data)
        async with self._changed:
            self._changed.notify_all()
        await self._resume_gate.wait()
        if data.get("token") != self.token:
            await gateway.ws.close(code=4004, message=b"Authentication failed.")
            return
        session = str(data.get("session_id"))
        if self.invalidate_resumes or session not in self._session_seqs:
            self._missed.pop(session, None)
            await gateway.send(9, False)  # d=false: not resumable, IDENTIFY afresh
            return
        gateway.session_id = session
        gateway.seq = self._session_seqs.pop(session)
        for event, missed in self._missed.pop(session, []):
            await gateway.send(0, missed, event)
        await gateway.send(0, {}, "RESUMED")
        gateway.ready = True
        async with self._changed:
            self._changed.notify_all()


def _hit(window: deque[float], now: float, calls: int, per: float) -> float:
    """Count a call in a sliding window; the seconds to wait if it is one too many, else 0."""
    while window and now - window[0] >= per:
        window.popleft()
    if len(window) >= calls:
        return per - (now - window[0])
    window.append(now)
    return 0.0
