"""An engine's settings against the fake upstream, one turn through it, and a polled wait:
the plain helpers the engine, front-door, fault, bad-input and storage suites share (their
fixtures live in each suite's conftest)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bots.config import Config, load_config
from core.engine import Engine
from core.model import ConversationKey, Turn
from tests.fakes.sink import RecordingSink
from tests.fakes.upstream import FakeUpstream

EngineFactory = Callable[..., Awaitable[Engine]]
"""`await factory(**settings)`: an engine opened as `parley` opens one (tests/core/conftest)."""

KEY = ConversationKey("test", "w1", "c1")


def make_settings(upstream: FakeUpstream, database: Path, **overrides: Any) -> Config:
    """Every setting of one parley (fields by name, whichever adapter owns them), pointed at
    the fake upstream and `database`; the environment's .env is not read."""
    values: dict[str, Any] = {
        "openai_base_url": upstream.base_url,
        "database": str(database),
        "flush_interval": 0.05,
        "placeholder_after": 0.05,
        "upstream_retries": 0,
        "first_token_timeout": 2.0,
        "idle_timeout": 2.0,
        "total_timeout": 10.0,
        "system_prompt": "You are a test bot.",
    }
    values.update(overrides)
    return load_config(_env_file=None, **values)


async def ask(
    engine: Engine,
    text: str,
    *,
    key: ConversationKey = KEY,
    author: str = "u1",
    admin: bool = False,
) -> RecordingSink:
    """One turn through the engine; returns the sink that shows what the user saw."""
    sink = RecordingSink(max_chars=2000)
    sink.result = await engine.handle(Turn(key, author, text, admin=admin), sink)
    return sink


async def eventually(condition: Callable[[], bool], *, within: float = 5.0) -> None:
    """Wait until `condition()` holds (polled), failing the test after `within` seconds."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - database state has no event to await
            await asyncio.sleep(0.005)
