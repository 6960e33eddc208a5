"""A front door written the way README's "How it is built" says a new one is: one package
(here one module) with the face of bots/faces.py, and one line in bots/registry.py.

It is a plain webhook: `POST /webhook/{channel}` with a JSON body `{"user": ..., "text": ...}`
and `Authorization: Bearer <WEBHOOK_TOKEN>` gets the whole answer back as JSON. Everything
around it (its variables in `--help`, its doctor line, its token scrubbed from logs, its
routes on the one HTTP server, its turns stopped with a grace period) comes from the face.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any, ClassVar

from aiohttp import web
from pydantic import Field, SecretStr

from bots.kit import Turns
from core.checks import Check
from core.config import AdapterSettings
from core.engine import Engine
from core.model import ConversationKey, Turn
from core.sink import Sign, SinkDefaults

NAME = "webhook"
SECRET_SHAPES = (r"whk_[A-Za-z0-9]{8,}",)


class WebhookSettings(AdapterSettings):
    """WEBHOOK_TOKEN turns the webhook on."""

    title: ClassVar[str] = "webhook"

    webhook_token: SecretStr | None = Field(
        None, alias="WEBHOOK_TOKEN", description="the token a caller must send"
    )


SETTINGS = WebhookSettings


def configured(settings: WebhookSettings) -> bool:
    return settings.webhook_token is not None


def build(engine: Engine, settings: WebhookSettings, state_file: Any) -> WebhookDoor:
    return WebhookDoor(engine, settings)


async def check(settings: WebhookSettings) -> Check:
    if not configured(settings):
        return Check(NAME, None, "not configured (set WEBHOOK_TOKEN)")
    return Check(NAME, True, "a token is set (nothing to reach: callers come to parley)")


class WebhookSink(SinkDefaults):
    """The answer as it grows; the response is sent when the turn ends."""

    max_chars = 1_000_000

    def __init__(self) -> None:
        self.text = ""
        self.notices: list[str] = []

    async def post(self, text: str, *, sign: Sign | None = None) -> int:
        if sign is None:
            self.text = text
        return 0

    async def edit(self, ref: object, text: str, *, sign: Sign | None = None) -> None:
        if sign is None:
            self.text = text

    async def notice(self, text: str) -> None:
        self.notices.append(text)


class WebhookDoor:
    def __init__(self, engine: Engine, settings: WebhookSettings) -> None:
        assert settings.webhook_token is not None
        self._engine = engine
        self._token = settings.webhook_token.get_secret_value()
        self._turns = Turns(NAME)
        self._open = False

    @property
    def connected(self) -> bool:
        return self._open

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/webhook/{channel}", self._hook)]

    async def start(self) -> None:
        self._open = True

    async def stop(self, grace: float = 5.0) -> None:
        self._open = False
        await self._turns.close(grace)

    async def _hook(self, request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), self._token.encode()):
            return web.json_response({"error": "unauthorized"}, status=401)
        body = await request.json()
        key = ConversationKey(NAME, "hooks", request.match_info["channel"])
        sink = WebhookSink()
        turn = Turn(key, str(body["user"]), str(body["text"]))
        task = asyncio.current_task()
        if task is not None:
            self._turns.track(task)  # aiohttp's request task: stop() gives it its grace
        result = await self._engine.handle(turn, sink)
        return web.json_response(
            {"reply": sink.text or result.notice, "outcome": result.outcome.value}
        )
