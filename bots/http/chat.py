"""The chat API: POST /v1/chat (JSON or SSE) and GET /v1/chat/ws, on the shared engine.

An API caller is one more front door: the same commands, validation, rate limits and
memory as Slack or Discord, in conversation ("api", workspace, channel). Only mounted when
PARLEY_API_TOKEN is set, and every request must carry it as a bearer token.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from bots.bodies import printable, too_deep
from bots.http.connections import HEARTBEAT_SECONDS
from bots.http.errors import ApiError
from bots.http.outcomes import conclude, stream_end
from bots.http.sink import ApiSink, EventWriter
from bots.http.streams import SseEvents, WsEvents
from core.engine import Engine, TurnResult
from core.model import ConversationKey, Turn

log = structlog.get_logger(__name__)

PLATFORM = "api"
WORKSPACE = "default"
"""The one token maps to one workspace; a constant (not a hash of the token) so rotating
the token keeps the conversations."""
AUTHOR = "api"
DEFAULT_CHANNEL = "default"
MAX_CHANNEL_CHARS = 200
MAX_USER_CHARS = 200
CHAT_PATH = "/v1/chat"
WS_PATH = "/v1/chat/ws"
_FIELDS = frozenset({"channel", "message", "user"})
_SHAPE = 'Send a JSON object like {"channel": "general", "message": "Hello"}.'


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One turn asked for through the API; `user` is whom it counts for (rate limits, and
    the author kept in memory)."""

    channel: str
    message: str
    user: str = AUTHOR


def parse_request(raw: bytes | str) -> ChatRequest:
    """The request in a body or WebSocket message, or ApiError(400) saying what is wrong."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if too_deep(text):
        raise ApiError(400, "bad_request", f"The body is nested too deeply. {_SHAPE}")
    try:
        data: Any = json.loads(text)
    except ValueError:
        raise ApiError(400, "bad_request", f"The body is not valid JSON. {_SHAPE}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", f"The body must be a JSON object. {_SHAPE}")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ApiError(400, "bad_request", f"Unknown field {unknown[0]!r}. {_SHAPE}")
    message = data.get("message")
    if not isinstance(message, str):
        raise ApiError(400, "bad_request", f'"message" must be a string. {_SHAPE}')
    channel = data.get("channel", DEFAULT_CHANNEL)
    if not isinstance(channel, str) or not printable(channel, longest=MAX_CHANNEL_CHARS):
        raise ApiError(
            400,
            "bad_request",
            f'"channel" must be a string of 1 to {MAX_CHANNEL_CHARS} printable characters'
            " (no control, bidirectional-override or lone surrogate characters).",
        )
    user = data.get("user", AUTHOR)
    if not isinstance(user, str) or not printable(user, longest=MAX_USER_CHARS):
        raise ApiError(
            400,
            "bad_request",
            f'"user" must be a string of 1 to {MAX_USER_CHARS} printable characters.',
        )
    return ChatRequest(channel, message, user)


class ChatApi:
    """The chat endpoints; `routes()` are mounted by HttpServer when a token is configured."""

    def __init__(self, engine: Engine, token: str, *, max_message_bytes: int) -> None:
        self._engine = engine
        self._token = token.encode()
        self._max_message_bytes = max_message_bytes
        self._sockets: set[web.WebSocketResponse] = set()

    def routes(self) -> list[web.RouteDef]:
        """POST /v1/chat and GET /v1/chat/ws."""
        return [web.post(CHAT_PATH, self.chat), web.get(WS_PATH, self.websocket)]

    async def close_sockets(self, app: web.Application | None = None) -> None:
        """Close open WebSockets (going away), so shutdown never waits on an idle client."""
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server stopping")

    # -- endpoints ---------------------------------------------------------------------------
    async def chat(self, request: web.Request) -> web.StreamResponse:
        """One turn; JSON answer, or SSE events with `Accept: text/event-stream`."""
        self._authorize(request)
        asked = parse_request(await request.read())
        turn = self._turn(asked)
        request_id = {"X-Request-Id": turn.request_id}
        if "text/event-stream" not in request.headers.get("Accept", ""):
            answer = conclude(await self._engine.handle(turn, ApiSink(turn.request_id)))
            if isinstance(answer, ApiError):
                answer.headers.update(request_id)
                raise answer
            return web.json_response(answer.body(), headers=request_id)
        events = SseEvents(request, turn.request_id)
        sink = ApiSink(turn.request_id, events)
        result = await self._engine.handle(turn, sink)
        answer = conclude(result)
        if isinstance(answer, ApiError) and result.notice and not events.started:
            # Refused (or failed) before the model was asked: a plain HTTP error says it
            # best. A failure of the model itself is a 200 stream ending in `error`.
            answer.headers.update(request_id)
            raise answer
        await self._end(sink, events, result)
        await events.close()
        assert events.response is not None  # _end sent at least one event
        return events.response

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        """A conversation over one socket: each text message is a turn, answered in order."""
        self._authorize(request)
        ws = web.WebSocketResponse(
            max_msg_size=self._max_message_bytes, heartbeat=HEARTBEAT_SECONDS
        )
        await ws.prepare(request)
        self._sockets.add(ws)
        events = WsEvents(ws)
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    await self._ws_turn(message.data, events)
                elif message.type is WSMsgType.BINARY:
                    error = ApiError(400, "bad_request", f"Send text frames. {_SHAPE}")
                    await events.send("error", _refused(error))
        finally:
            self._sockets.discard(ws)
        return ws

    # -- a turn --------------------------------------------------------------------------------
    async def _ws_turn(self, data: str, events: WsEvents) -> None:
        try:
            asked = parse_request(data)
        except ApiError as error:
            await events.send("error", _refused(error))
            return
        turn = self._turn(asked)
        sink = ApiSink(turn.request_id, events)
        await self._end(sink, events, await self._engine.handle(turn, sink))

    def _turn(self, asked: ChatRequest) -> Turn:
        key = ConversationKey(PLATFORM, WORKSPACE, asked.channel)
        # Whoever holds the API token may change the settings of its channels.
        return Turn(key, asked.user, asked.message, author_name=asked.user, admin=True)

    @staticmethod
    async def _end(sink: ApiSink, events: EventWriter, result: TurnResult) -> None:
        """The last events of a streamed turn: the rest of the reply, then `done` (it
        finished) or `error` (it did not: cut off, failed, refused)."""
        await sink.start()
        event, data = stream_end(result)
        if event == "done":
            await sink.catch_up(data["reply"])
        await events.send(event, data)

    def _authorize(self, request: web.Request) -> None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self._token
        ):
            raise ApiError(
                401,
                "unauthorized",
                "Send the API token in the header 'Authorization: Bearer <token>'.",
                headers={"WWW-Authenticate": 'Bearer realm="parley"'},
            )


def _refused(error: ApiError) -> dict[str, Any]:
    """The `error` event for a WebSocket message that was not a turn at all."""
    return {**error.body(), "reply": "", "status": "refused"}
