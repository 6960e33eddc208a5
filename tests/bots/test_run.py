"""`parley run` as a real subprocess: start-up, SIGTERM during a streamed reply, and what
the database holds afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fakes.upstream import FakeUpstream, Script
from tests.support.running import start_run

TOKEN = "test-api-token-0123456789"


@dataclass
class Parley:
    process: asyncio.subprocess.Process
    port: int
    database: Path
    log: list[dict[str, Any]]
    reader: asyncio.Task[None] | None = None  # keeps reading the log after start-up

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def start_parley(upstream: FakeUpstream, tmp: Path, **env: str) -> Parley:
    """Start `parley run`; return once it logged `parley_started` (with its bound port)."""
    database = tmp / "parley.db"
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "OPENAI_BASE_URL": upstream.base_url,
        "PARLEY_DATABASE": str(database),
        "PARLEY_API_TOKEN": TOKEN,
        "PARLEY_HTTP_PORT": "0",
        "PARLEY_UPSTREAM_RETRIES": "0",
        "PARLEY_FLUSH_INTERVAL": "0.1",
        **env,
    }
    running = await start_run(full_env, tmp)
    port = int(running.started["http_port"])
    return Parley(running.process, port, database, running.log, running.reader)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as s:
        yield s


async def sse_events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, Any]]:
    event = ""
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            yield event, json.loads(line[5:])


async def stream_until_sigterm(parley: Parley, session: aiohttp.ClientSession) -> list[Any]:
    """Ask over SSE, send SIGTERM after the first delta, return every event received."""
    events: list[Any] = []
    async with session.post(
        f"{parley.url}/v1/chat",
        json={"channel": "ops", "message": "tell me something long"},
        headers={"Accept": "text/event-stream"},
    ) as response:
        assert response.status == 200
        async for name, data in sse_events(response):
            events.append((name, data))
            if name == "delta" and len(events) == 2:
                parley.process.send_signal(signal.SIGTERM)
            if name in ("done", "error"):
                break
    return events


def table(database: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return list(db.execute("SELECT role, content, status FROM messages ORDER BY id"))


async def test_sigterm_lets_a_reply_in_flight_finish(
    upstream: FakeUpstream, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    text = " ".join(f"w{n}" for n in range(60))
    upstream.script(Script(text=text, chunk_chars=6, interval=0.03))
    parley = await start_parley(upstream, tmp_path, PARLEY_SHUTDOWN_GRACE="20")
    events = await stream_until_sigterm(parley, session)
    assert events[-1][0] == "done" and events[-1][1]["reply"] == text
    assert await asyncio.wait_for(parley.process.wait(), 20) == 0
    assert table(parley.database) == [
        ("user", "tell me something long", "complete"),
        ("assistant", text, "complete"),
    ]
    assert any(line["event"] == "parley_stopped" for line in parley.log)


async def test_sigterm_past_the_grace_marks_the_reply_interrupted(
    upstream: FakeUpstream, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    upstream.script(Script(text="x " * 400, chunk_chars=4, interval=0.05))
    parley = await start_parley(upstream, tmp_path, PARLEY_SHUTDOWN_GRACE="0.3")
    events = await stream_until_sigterm(parley, session)
    name, data = events[-1]
    assert (name, data["code"], data["status"]) == ("error", "shutting_down", "interrupted")
    assert "interrupted" in data["message"] and "x x" in data["reply"]
    assert await asyncio.wait_for(parley.process.wait(), 20) == 0
    rows = table(parley.database)
    assert rows[0] == ("user", "tell me something long", "complete")
    assert rows[1][2] == "interrupted" and rows[1][1] and "x x" in rows[1][1]


async def test_readiness_and_new_turns_during_shutdown(
    upstream: FakeUpstream, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    parley = await start_parley(upstream, tmp_path)
    async with session.get(f"{parley.url}/readyz") as response:
        body = await response.json()
        assert response.status == 200, body
        assert body["checks"]["database"] is True
    parley.process.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(parley.process.wait(), 20) == 0
