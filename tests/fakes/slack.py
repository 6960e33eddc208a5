"""A fake Slack on loopback: the Web API methods parley calls and the Socket Mode websocket.

The real slack_sdk and slack-bolt talk to it over real sockets. It answers in Slack's shapes
(`ok`, `error`, `ts`, `channel`), checks the Bearer token, records every call with its time,
and can behave like the real platform under load: `chat.update` limited per workspace
(sliding window), `chat.postEphemeral` per workspace (sliding window), `chat.postMessage`
per channel (token bucket), 429 + Retry-After past them. Events and slash commands go out
as Socket Mode envelopes whose acks are timed. Tests synchronise with `wait_for(condition)`,
never with sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import WSMsgType, web

from tests.fakes import slack_payloads as payloads
from tests.fakes.loopback import serve
from tests.fakes.slack_payloads import (
    ADMINS,
    APP_TOKEN,
    BOT_ID,
    BOT_TOKEN,
    BOT_USER_ID,
    MARKDOWN_LIMIT,
    TEAM_ID,
    TEXT_LIMIT,
    USERS,
)


@dataclass
class ApiCall:
    method: str
    params: dict[str, Any]
    at: float  # time.monotonic() when the request arrived
    status: int
    error: str | None
    peer: Any = None  # the client's (host, port): the same port means a reused connection


@dataclass
class Message:
    """A message the bot posted, with every text it has shown."""

    channel: str
    ts: str
    thread_ts: str | None
    text: str
    versions: list[str]
    posted_at: float


@dataclass
class Envelope:
    envelope_id: str
    type: str
    payload: dict[str, Any]
    sent_at: float
    acked_at: float | None = None
    ack_payload: Any = None


@dataclass
class _Failure:
    status: int
    error: str
    retry_after: float
    times: int


@dataclass
class _Window:
    """At most `calls` in any `window` seconds."""

    calls: int
    window: float
    stamps: deque[float] = field(default_factory=deque)

    def take(self, now: float) -> float:
        while self.stamps and self.stamps[0] <= now - self.window:
            self.stamps.popleft()
        if len(self.stamps) >= self.calls:
            return self.stamps[0] + self.window - now
        self.stamps.append(now)
        return 0.0


@dataclass
class _Bucket:
    rate: float
    burst: int
    tokens: float = -1.0
    updated: float = 0.0

    def take(self, now: float) -> float:
        if self.tokens < 0:
            self.tokens, self.updated = float(self.burst), now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return (1 - self.tokens) / self.rate
        self.tokens -= 1
        return 0.0


class FakeSlack:
    """`async with FakeSlack() as slack:` then point SLACK_API_URL at `slack.api_url`."""

    def __init__(
        self, *, team_id: str = TEAM_ID, bot_token: str = BOT_TOKEN, app_token: str = APP_TOKEN
    ) -> None:
        self.team_id = team_id
        self.bot_token = bot_token  # the tokens it accepts (tests of secrets bring their own)
        self.app_token = app_token
        self.calls: list[ApiCall] = []
        self.messages: list[Message] = []
        self.ephemerals: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []  # posts to a command's response_url
        self.envelopes: dict[str, Envelope] = {}
        self.rate_limited: Counter[str] = Counter()
        self.connections = 0
        self.invalid_auth = False
        self._by_ts: dict[tuple[str, str], Message] = {}
        self._failures: dict[str, deque[_Failure]] = {}
        self._delays: dict[str, float] = {}
        self._holds: dict[str, asyncio.Event] = {}
        self._update_limit: tuple[int, float] | None = None
        self._ephemeral_limit: tuple[int, float] | None = None
        self._post_limit: tuple[float, int] | None = None
        self._windows: dict[str, _Window] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._changed = asyncio.Condition()
        self._ids = itertools.count(1)
        self._ts_base = int(time.time())
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/link/", self._socket)
        app.router.add_post("/response/{id}", self._response_url)
        self._runner, self.port = await serve(app)

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- behaviour ------------------------------------------------------------------------
    def limit_updates(self, calls: int, window: float = 60.0) -> None:
        """Enforce Slack's Tier 3 on chat.update: `calls` per `window` s per workspace."""
        self._update_limit = (calls, window)

    def limit_ephemerals(self, calls: int = 100, window: float = 60.0) -> None:
        """Enforce Slack's Tier 4 on chat.postEphemeral: `calls` per `window` s per workspace."""
        self._ephemeral_limit = (calls, window)

    def limit_posts(self, rate: float = 1.0, burst: int = 3) -> None:
        """Enforce about `rate` chat.postMessage per second per channel, bursts of `burst`."""
        self._post_limit = (rate, burst)

    def fail(
        self,
        method: str,
        times: int = 1,
        *,
        status: int = 429,
        error: str = "ratelimited",
        retry_after: float = 1,
    ) -> None:
        """Answer the next `times` calls of `method` with an error (429 storms, not_in_channel)."""
        self._failures.setdefault(method, deque()).append(
            _Failure(status, error, retry_after, times)
        )

    def delay(self, method: str, seconds: float) -> None:
        """Answer `method` only after `seconds` (a slow Slack)."""
        self._delays[method] = seconds

    def hold(self, method: str) -> asyncio.Event:
        """Answer `method` only once the returned event is set (a Slack the test releases)."""
        return self._holds.setdefault(method, asyncio.Event())

    # -- events in ------------------------------------------------------------------------
    def next_ts(self) -> str:
        return f"{self._ts_base}.{next(self._ids):06d}"

    def event_body(self, event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
        """An Events API `event_callback` payload around `event`."""
        return payloads.event_body(event, event_id or f"Ev{next(self._ids):08d}", self.team_id)

    def mention_event(
        self, channel: str, user: str, text: str, *, ts: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        event = payloads.mention_event(channel, user, text, ts or self.next_ts(), self.team_id)
        return event | payloads.present(extra)

    def dm_event(
        self, channel: str, user: str | None, text: str, *, ts: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        event = payloads.dm_event(channel, user, text, ts or self.next_ts(), self.team_id)
        return payloads.present(event | extra)

    async def mention(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        ts: str | None = None,
        thread_ts: str | None = None,
        event_id: str | None = None,
        **extra: Any,
    ) -> Envelope:
        event = self.mention_event(channel, user, text, ts=ts, thread_ts=thread_ts, **extra)
        return await self.event(event, event_id=event_id)

    async def dm(
        self,
        channel: str,
        user: str | None,
        text: str,
        *,
        ts: str | None = None,
        event_id: str | None = None,
        **extra: Any,
    ) -> Envelope:
        return await self.event(
            self.dm_event(channel, user, text, ts=ts, **extra), event_id=event_id
        )

    async def event(self, event: dict[str, Any], *, event_id: str | None = None) -> Envelope:
        return await self.push("events_api", self.event_body(event, event_id=event_id))

    async def slash(self, text: str, user: str, channel: str, command: str = "/parley") -> Envelope:
        payload = payloads.slash_command(
            text,
            user,
            channel,
            team_id=self.team_id,
            command=command,
            response_url=f"http://127.0.0.1:{self.port}/response/{next(self._ids)}",
        )
        return await self.push("slash_commands", payload, accepts_response_payload=True)

    async def push(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool = False,
        retry_attempt: int = 0,
    ) -> Envelope:
        """Send one Socket Mode envelope over the newest live connection."""
        await self.wait_for(lambda: self._live() is not None, what="a Socket Mode connection")
        ws = self._live()
        assert ws is not None
        envelope = Envelope(f"env-{next(self._ids)}", kind, payload, time.monotonic())
        self.envelopes[envelope.envelope_id] = envelope
        await ws.send_json(
            {
                "envelope_id": envelope.envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": accepts_response_payload,
                "retry_attempt": retry_attempt,
                "retry_reason": "",
            }
        )
        return envelope

    async def disconnect(self) -> None:
        """Ask the client to reconnect, as Slack does every few hours."""
        ws = self._live()
        assert ws is not None
        await ws.send_json({"type": "disconnect", "reason": "refresh_requested"})

    # -- views for assertions --------------------------------------------------------------
    def calls_to(self, method: str) -> list[ApiCall]:
        return [c for c in self.calls if c.method == method]

    def thread(self, channel: str, thread_ts: str | None) -> list[Message]:
        """The bot's messages in one thread (None: at the top of the channel), in order."""
        return [m for m in self.messages if m.channel == channel and m.thread_ts == thread_ts]

    def text_in(self, channel: str, thread_ts: str | None) -> str:
        return "".join(m.text for m in self.thread(channel, thread_ts))

    async def wait_for(
        self, condition: Callable[[], bool], *, timeout: float = 5.0, what: str = "condition"
    ) -> None:
        """Wait until `condition()` holds after some call, ack or connection."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(condition)
        except TimeoutError:
            raise AssertionError(f"fake Slack: no {what} within {timeout} s") from None

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- Socket Mode ------------------------------------------------------------------------
    def _live(self) -> web.WebSocketResponse | None:
        live = [ws for ws in self._sockets if not ws.closed]
        return live[-1] if live else None

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)  # answers the client's pings with pongs
        await ws.prepare(request)
        self._sockets.append(ws)
        self.connections += 1
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {}})
        await self._notify()
        try:
            async for frame in ws:
                if frame.type is not WSMsgType.TEXT:
                    continue
                data = json.loads(frame.data)
                envelope = self.envelopes.get(data.get("envelope_id", ""))
                if envelope is not None and envelope.acked_at is None:
                    envelope.acked_at = time.monotonic()
                    envelope.ack_payload = data.get("payload")
                    await self._notify()
        finally:
            self._sockets.remove(ws)
            await self._notify()
        return ws

    async def _response_url(self, request: web.Request) -> web.Response:
        self.responses.append(await request.json())
        await self._notify()
        return web.json_response({"ok": True})

    # -- Web API ----------------------------------------------------------------------------
    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        now = time.monotonic()
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                params.update(await request.post())
        token = request.headers.get("Authorization", "").removeprefix("Bearer ") or str(
            params.pop("token", "")
        )
        if method in self._delays:
            await asyncio.sleep(self._delays[method])
        if method in self._holds:
            await self._holds[method].wait()
        status, body, headers = self._answer(method, params, token, now)
        error = None if body.get("ok") else str(body.get("error"))
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.calls.append(ApiCall(method, params, now, status, error, peer))
        await self._notify()
        return web.json_response(body, status=status, headers=headers)

    def _answer(
        self, method: str, params: dict[str, Any], token: str, now: float
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        wanted = self.app_token if method == "apps.connections.open" else self.bot_token
        if not token:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if self.invalid_auth or token != wanted:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        queue = self._failures.get(method)
        if queue:
            failure = queue[0]
            failure.times -= 1
            if failure.times <= 0:
                queue.popleft()
            return self._failure(method, failure.status, failure.error, failure.retry_after)
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        result: tuple[int, dict[str, Any], dict[str, str]] = handler(params, now)
        return result

    def _failure(
        self, method: str, status: int, error: str, retry_after: float
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        headers = {}
        if status == 429:
            self.rate_limited[method] += 1
            headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        return status, {"ok": False, "error": error}, headers

    def _m_auth_test(self, params: dict[str, Any], now: float) -> Any:
        return (
            200,
            {
                "ok": True,
                "url": "https://fake.slack.test/",
                "team": "Fake Team",
                "user": "parley",
                "team_id": self.team_id,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
                "is_enterprise_install": False,
            },
            {},
        )

    def _m_apps_connections_open(self, params: dict[str, Any], now: float) -> Any:
        url = f"ws://127.0.0.1:{self.port}/link/?ticket={next(self._ids)}"
        return 200, {"ok": True, "url": url}, {}

    def _m_users_info(self, params: dict[str, Any], now: float) -> Any:
        user = str(params.get("user", ""))
        if user not in USERS:
            return 200, {"ok": False, "error": "user_not_found"}, {}
        name, real, display = USERS[user]
        profile = {"real_name": real, "display_name": display}
        found = {"id": user, "name": name, "profile": profile, "is_admin": user in ADMINS}
        return 200, {"ok": True, "user": found}, {}

    def _m_chat_postMessage(self, params: dict[str, Any], now: float) -> Any:
        problem = _text_problem(params)
        if problem or not params.get("channel"):
            return 200, {"ok": False, "error": problem or "channel_not_found"}, {}
        channel = str(params["channel"])
        if self._post_limit is not None:
            bucket = self._buckets.setdefault(channel, _Bucket(*self._post_limit))
            wait = bucket.take(now)
            if wait:
                return self._failure("chat.postMessage", 429, "ratelimited", wait)
        text = _text(params)
        thread = params.get("thread_ts") or None
        message = Message(channel, self.next_ts(), thread, text, [text], now)
        self.messages.append(message)
        self._by_ts[(channel, message.ts)] = message
        shown: dict[str, Any] = {"type": "message", "text": text, "user": BOT_USER_ID}
        shown["bot_id"] = BOT_ID
        shown |= {"ts": message.ts, "thread_ts": thread}
        return 200, {"ok": True, "channel": channel, "ts": message.ts, "message": shown}, {}

    def _m_chat_update(self, params: dict[str, Any], now: float) -> Any:
        message = self._by_ts.get((str(params.get("channel")), str(params.get("ts"))))
        if message is None:
            return 200, {"ok": False, "error": "message_not_found"}, {}
        problem = _text_problem(params)
        if problem:
            return 200, {"ok": False, "error": problem}, {}
        if self._update_limit is not None:
            window = self._windows.setdefault(self.team_id, _Window(*self._update_limit))
            wait = window.take(now)
            if wait:
                return self._failure("chat.update", 429, "ratelimited", wait)
        message.text = _text(params)
        message.versions.append(message.text)
        body = {"ok": True, "channel": message.channel, "ts": message.ts, "text": message.text}
        return 200, body, {}

    def _m_chat_postEphemeral(self, params: dict[str, Any], now: float) -> Any:
        problem = _text_problem(params)
        if problem:
            return 200, {"ok": False, "error": problem}, {}
        if self._ephemeral_limit is not None:
            window = self._windows.setdefault("ephemeral", _Window(*self._ephemeral_limit))
            wait = window.take(now)
            if wait:
                return self._failure("chat.postEphemeral", 429, "ratelimited", wait)
        self.ephemerals.append(params)
        return 200, {"ok": True, "message_ts": self.next_ts()}, {}


def _text(params: dict[str, Any]) -> str:
    return str(params.get("markdown_text") or params.get("text") or "")


def _text_problem(params: dict[str, Any]) -> str | None:
    """Slack's checks on a message body: markdown_text alone, not blank, not too long."""
    markdown = params.get("markdown_text")
    if markdown is not None and (params.get("text") or params.get("blocks")):
        return "invalid_arguments"
    text = _text(params)
    if not text.strip():
        return "no_text"
    if len(text) > (MARKDOWN_LIMIT if markdown is not None else TEXT_LIMIT):
        return "msg_too_long"
    return None
