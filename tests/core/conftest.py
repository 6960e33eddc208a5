"""An engine wired to the real openai SDK (against the fake upstream) and a real SQLite file.

The plain helpers (make_settings, ask, eventually, KEY) are in tests/support/engine.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bots.main import close_engine, open_engine
from core.engine import Engine
from tests.fakes.upstream import FakeUpstream
from tests.support.engine import EngineFactory, make_settings


@pytest.fixture
async def make_engine(upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[EngineFactory]:
    """Build engines on one database file; all are closed after the test."""
    opened: list[Engine] = []

    async def factory(**overrides: Any) -> Engine:
        settings = make_settings(upstream, tmp_path / "parley.db", **overrides)
        engine = await open_engine(settings)
        opened.append(engine)
        return engine

    yield factory
    for engine in opened:
        await close_engine(engine)


@pytest.fixture
async def engine(make_engine: EngineFactory) -> Engine:
    return await make_engine()
