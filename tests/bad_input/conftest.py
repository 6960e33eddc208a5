"""Bad input, end to end: an engine, a Slack and a Discord front door that a hypothesis
test can feed many examples through.

pytest-asyncio runs every example of an async `@given` test on the test's event loop, with
the test's fixtures set up once: one engine (or front door) per test, a fresh channel per
example (`Channels`), and rate limits raised so only the input decides what happens.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

import models.openai as openai_compatible
from bots.config import Config
from bots.discord import DiscordFrontDoor
from bots.main import close_engine
from bots.slack import SlackFrontDoor
from core.config import EngineSettings
from core.engine import Engine, TurnResult
from core.llm import LLM
from core.memory import MemoryStore
from core.model import Turn
from core.sink import ReplySink
from storage.sqlite import SqliteStore
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_payloads import APP_TOKEN, BOT_TOKEN
from tests.fakes.upstream import FakeUpstream
from tests.support.engine import make_settings

EXAMPLES = settings(
    # The gate is deterministic (the same examples in every CI run); a deeper search with
    # PARLEY_BAD_INPUT_SCALE > 1 explores new ones.
    derandomize=float(os.environ.get("PARLEY_BAD_INPUT_SCALE", "1")) <= 1,
    deadline=None,  # each example is a real turn over loopback
    database=None,  # nothing written to .hypothesis/
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
"""The base every test here derives from; use `examples(n)`."""

SCALE = float(os.environ.get("PARLEY_BAD_INPUT_SCALE", "1"))
"""Multiplies every test's example count: 1 keeps the suite well under a minute and a half;
a nightly run can search much deeper (PARLEY_BAD_INPUT_SCALE=10 with --timeout=0, since
pytest-timeout's 60 s per test is sized for the default)."""


def examples(count: int) -> settings:
    """Hypothesis settings for a test here: `count` examples (times SCALE)."""
    return settings(EXAMPLES, max_examples=max(1, round(count * SCALE)))


NO_LIMITS: dict[str, Any] = {
    # Patient timeouts: on a busy machine a slow loop must not pass for a slow model.
    "first_token_timeout": 10.0,
    "idle_timeout": 10.0,
    "total_timeout": 60.0,
    "rate_limit_per_minute": 1_000_000.0,
    "rate_limit_burst": 1_000_000,
    "slack_updates_per_minute": 0,  # no shared chat.update budget: examples never wait
    "discord_requests_per_second": 0,
}


class WatchedEngine(Engine):
    """The real engine, keeping each turn's result so a test can wait for a turn to end."""

    def __init__(self, settings: EngineSettings, store: MemoryStore, llm: LLM) -> None:
        super().__init__(settings, store, llm)
        self.results: list[tuple[Turn, TurnResult]] = []
        self._done = asyncio.Condition()

    async def handle(self, turn: Turn, sink: ReplySink) -> TurnResult:
        result = await super().handle(turn, sink)
        self.results.append((turn, result))
        async with self._done:
            self._done.notify_all()
        return result

    async def turns_done(self, count: int, *, timeout: float = 30.0) -> TurnResult:
        """Wait until `count` turns have ended; the newest result."""
        async with asyncio.timeout(timeout), self._done:
            await self._done.wait_for(lambda: len(self.results) >= count)
        return self.results[count - 1][1]


async def open_watched(config: Config) -> WatchedEngine:
    """A WatchedEngine wired as `parley` wires its engine (bots.main.open_engine)."""
    store = SqliteStore(config.database)
    await store.open()
    return WatchedEngine(config.engine, store, openai_compatible.open(config.model))


class Channels:
    """A new channel name for every example, so no example shares memory or a budget."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def __call__(self, prefix: str = "C") -> str:
        return f"{prefix}0BAD{next(self._ids):06d}"

    def number(self) -> int:
        """A fresh Discord-style channel id."""
        return 1_500_000_000_000_000_000 + next(self._ids)


@pytest.fixture
def channels() -> Channels:
    return Channels()


@pytest.fixture
async def engine(upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[WatchedEngine]:
    """The real engine: openai SDK against the fake upstream, SQLite in tmp_path."""
    opened = await open_watched(make_settings(upstream, tmp_path / "parley.db", **NO_LIMITS))
    yield opened
    await close_engine(opened)


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
async def slack_door(
    upstream: FakeUpstream, slack: FakeSlack, tmp_path: Path
) -> AsyncIterator[tuple[SlackFrontDoor, WatchedEngine]]:
    """A Socket Mode front door connected to the fake Slack, and its engine."""
    values = {
        "slack_bot_token": BOT_TOKEN,
        "slack_app_token": APP_TOKEN,
        "slack_api_url": slack.api_url,
        **NO_LIMITS,
    }
    chosen = make_settings(upstream, tmp_path / "parley.db", **values)
    watched = await open_watched(chosen)
    door = SlackFrontDoor(watched, chosen.door("slack"))
    await door.start()
    yield door, watched
    await watched.drain(grace=1.0)
    await door.stop(grace=1.0)
    await close_engine(watched)


@pytest.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


@pytest.fixture
async def discord_door(
    upstream: FakeUpstream, discord_fake: FakeDiscord, tmp_path: Path
) -> AsyncIterator[tuple[DiscordFrontDoor, WatchedEngine]]:
    """parley's Discord front door on the fake Discord, ready, and its engine."""
    values = {
        "discord_bot_token": discord_fake.token,
        "discord_api_url": discord_fake.api_url,
        **NO_LIMITS,
    }
    chosen = make_settings(upstream, tmp_path / "parley.db", **values)
    watched = await open_watched(chosen)
    door = DiscordFrontDoor(
        watched, chosen.door("discord"), guild_ready_timeout=0.05, ready_timeout=5.0
    )
    await door.start()
    yield door, watched
    await watched.drain(5)
    await door.stop(grace=0)
    await close_engine(watched)
