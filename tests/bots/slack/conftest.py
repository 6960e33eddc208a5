"""Slack front doors wired to the fake Slack, the fake upstream and a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import pytest

from bots.http import HttpServer
from bots.main import close_engine, open_engine
from bots.slack import SlackFrontDoor
from core.engine import Engine
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_payloads import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET
from tests.fakes.upstream import FakeUpstream
from tests.support.engine import make_settings


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    """A started fake Slack (Web API + Socket Mode) on loopback."""
    async with FakeSlack() as fake:
        yield fake


class Doors:
    """Starts front doors, each with its own engine, on one database file; stops them all."""

    def __init__(self, upstream: FakeUpstream, slack: FakeSlack, database: Path) -> None:
        self._upstream = upstream
        self._slack = slack
        self._database = database
        self._engines: dict[int, Engine] = {}
        self._doors: list[SlackFrontDoor] = []
        self._servers: dict[int, HttpServer] = {}

    async def __call__(
        self,
        *,
        mode: Literal["socket", "http"] = "socket",
        api_url: str | None = None,
        start: bool = True,
        **overrides: Any,
    ) -> SlackFrontDoor:
        """A front door on its own engine; in HTTP mode its routes are on parley's HTTP
        server (on a free port: `port(door)`), as `parley run` mounts them."""
        values: dict[str, Any] = {
            "slack_bot_token": BOT_TOKEN,
            "slack_app_token": APP_TOKEN if mode == "socket" else None,
            "slack_signing_secret": SIGNING_SECRET if mode == "http" else None,
            "slack_api_url": api_url or self._slack.api_url,
            "http_host": "127.0.0.1",
            "http_port": 0,
            "flush_interval": 0.05,
            "placeholder_after": 0.05,
        }
        values.update(overrides)
        settings = make_settings(self._upstream, self._database, **values)
        engine = await open_engine(settings)
        door = SlackFrontDoor(engine, settings.door("slack"))
        self._engines[id(door)] = engine
        self._doors.append(door)
        if mode == "http":
            server = HttpServer(engine, settings.http, readiness={})
            server.app.add_routes(door.routes())
            await server.start()
            self._servers[id(door)] = server
        if start:
            await door.start()
        return door

    def port(self, door: SlackFrontDoor) -> int:
        """The port of the HTTP server an HTTP-mode door's events arrive on."""
        return self._servers[id(door)].port

    async def stop(self, door: SlackFrontDoor) -> None:
        """Shut one front door down the way the `parley` command does, engine included."""
        if door not in self._doors:
            return
        self._doors.remove(door)
        engine = self._engines.pop(id(door))
        await engine.drain(grace=1.0)
        await door.stop(grace=1.0)
        server = self._servers.pop(id(door), None)
        if server is not None:
            await server.stop()
        await close_engine(engine)

    async def stop_all(self) -> None:
        for door in list(self._doors):
            await self.stop(door)


@pytest.fixture
async def doors(upstream: FakeUpstream, slack: FakeSlack, tmp_path: Path) -> AsyncIterator[Doors]:
    factory = Doors(upstream, slack, tmp_path / "parley.db")
    yield factory
    await factory.stop_all()


@pytest.fixture
async def door(doors: Doors) -> SlackFrontDoor:
    """A Socket Mode front door, started and connected to the fake Slack."""
    return await doors()
