"""Fixtures shared across test packages."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.upstream import FakeUpstream


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    """A started OpenAI-compatible fake on loopback; stopped (stalled handlers cancelled) after."""
    async with FakeUpstream() as fake:
        yield fake
