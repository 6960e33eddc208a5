"""Fixtures: a fake Discord on loopback, and parley's Discord front door on a real engine.

The engine is the real one (real openai SDK against the fake upstream, real SQLite in
tmp_path); discord.py runs unmodified against the fake. Every front door a test opens is
stopped afterwards, because discord.py leaves tasks and a gateway socket behind otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bots.discord import COMMANDS_STATE, DiscordFrontDoor
from bots.main import close_engine, open_engine
from core.engine import Engine
from tests.fakes.discord import FakeDiscord
from tests.fakes.upstream import FakeUpstream
from tests.support.engine import make_settings

DoorFactory = Callable[..., Awaitable[DiscordFrontDoor]]
Shutdown = Callable[[DiscordFrontDoor], Awaitable[None]]


@pytest.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


@pytest.fixture
async def _doors() -> AsyncIterator[dict[DiscordFrontDoor, Engine]]:
    opened: dict[DiscordFrontDoor, Engine] = {}
    yield opened
    for door, engine in reversed(list(opened.items())):
        await _close(door, engine)


async def _close(door: DiscordFrontDoor, engine: Engine) -> None:
    await engine.drain(5)  # as `parley run` does: replies in flight finish first
    await door.stop(grace=0)
    await close_engine(engine)


@pytest.fixture
def make_door(
    upstream: FakeUpstream,
    discord_fake: FakeDiscord,
    tmp_path: Path,
    _doors: dict[DiscordFrontDoor, Engine],
) -> DoorFactory:
    """Build (and by default start) a front door; settings overrides as keywords."""

    async def factory(
        *, start: bool = True, door_options: dict[str, Any] | None = None, **overrides: Any
    ) -> DiscordFrontDoor:
        values: dict[str, Any] = {
            "discord_bot_token": discord_fake.token,
            "discord_api_url": discord_fake.api_url,
            "flush_interval": 0.05,
            "placeholder_after": 0.05,
        }
        values.update(overrides)
        settings = make_settings(upstream, tmp_path / "parley.db", **values)
        engine = await open_engine(settings)
        options: dict[str, Any] = {"guild_ready_timeout": 0.05, "ready_timeout": 5.0}
        options.update(door_options or {})
        state = settings.state_file(COMMANDS_STATE)
        door = DiscordFrontDoor(engine, settings.door("discord"), commands_state=state, **options)
        _doors[door] = engine
        if start:
            await door.start()
        return door

    return factory


@pytest.fixture
def shutdown(_doors: dict[DiscordFrontDoor, Engine]) -> Shutdown:
    """Stop a front door and close its engine now (a restart), not at teardown."""

    async def close(door: DiscordFrontDoor) -> None:
        await _close(door, _doors.pop(door))

    return close


@pytest.fixture
async def door(make_door: DoorFactory) -> DiscordFrontDoor:
    return await make_door()
