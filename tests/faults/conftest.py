"""Wiring for the fault and secrets suites: parley's real front doors on a real engine.

In process: Slack over Socket Mode against the fake Slack, Discord against the fake Discord
and the HTTP API, each on an Engine with the real openai SDK (built the way `parley` builds
it) against the fake upstream, and a real SQLite file. Out of process: `parley run` and
`parley console` as subprocesses against the same fakes. Only the remote side is fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog

import models.openai as openai_compatible
from bots.config import Config, secret_shapes
from bots.discord import DiscordFrontDoor
from bots.http import HttpServer
from bots.main import close_engine
from bots.slack import SlackFrontDoor
from core.engine import Engine, TurnResult
from core.logs import configure_logging
from core.model import Turn
from core.sink import ReplySink
from storage.sqlite import SqliteStore
from tests.fakes import discord_payloads as p
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_payloads import BOT_USER_ID
from tests.fakes.upstream import FakeUpstream, Script
from tests.support.engine import make_settings

SLACK_CHANNEL = "C0FAULTS"
ALICE = "U0ALICE"
AT_SLACK = f"<@{BOT_USER_ID}>"
AT_DISCORD = f"<@{p.BOT_ID}>"

FAST: dict[str, Any] = {
    "flush_interval": 0.05,
    "placeholder_after": 0.05,
    "first_token_timeout": 0.5,
    "idle_timeout": 0.5,
    "total_timeout": 10.0,
    "upstream_retries": 0,
    "http_host": "127.0.0.1",
    "http_port": 0,
}
"""Small timeouts and no SDK retries: every fault shows within a second."""


# -- in-process parleys ------------------------------------------------------------------------
class Finished:
    """The TurnResults of one engine, in the order its turns ended, to wait on."""

    def __init__(self, engine: Engine) -> None:
        self.results: list[TurnResult] = []
        self._changed = asyncio.Condition()
        handle = engine.handle

        async def recorded(turn: Turn, sink: ReplySink) -> TurnResult:
            result = await handle(turn, sink)
            self.results.append(result)
            async with self._changed:
                self._changed.notify_all()
            return result

        engine.handle = recorded  # type: ignore[method-assign]

    async def wait(self, count: int, timeout: float = 5.0) -> list[TurnResult]:
        """Wait until `count` turns have ended (memory written, final text shown)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.results) >= count)
        return self.results


class Stack:
    """Builds parleys (engine, then front doors on it) on one database file; `close()` stops
    them the way `parley run` does: drain the engine, stop the doors, close the rest."""

    def __init__(
        self, upstream: FakeUpstream, slack: FakeSlack, discord: FakeDiscord, database: Path
    ) -> None:
        self.upstream = upstream
        self.slack = slack
        self.discord = discord
        self.database = database
        self._engines: list[Engine] = []
        self.finished: dict[int, Finished] = {}  # id(engine) -> its ended turns
        self._doors: list[tuple[SlackFrontDoor | DiscordFrontDoor, Engine]] = []
        self._servers: list[HttpServer] = []
        self.configs: dict[int, Config] = {}  # id(engine) -> the settings it was built with

    def settings(self, **overrides: Any) -> Config:
        """FAST settings with both platforms pointed at their fakes."""
        values: dict[str, Any] = {
            **FAST,
            "slack_bot_token": self.slack.bot_token,
            "slack_app_token": self.slack.app_token,
            "slack_api_url": self.slack.api_url,
            "discord_bot_token": self.discord.token,
            "discord_api_url": self.discord.api_url,
            **overrides,
        }
        return make_settings(self.upstream, self.database, **values)

    async def engine(self, *, busy_timeout_ms: int = 5000, **overrides: Any) -> Engine:
        config = self.settings(**overrides)
        store = SqliteStore(config.database, busy_timeout_ms=busy_timeout_ms)
        await store.open()
        engine = Engine(config.engine, store, openai_compatible.open(config.model))
        self.configs[id(engine)] = config
        self._engines.append(engine)
        self.finished[id(engine)] = Finished(engine)
        return engine

    async def slack_door(self, engine: Engine) -> SlackFrontDoor:
        door = SlackFrontDoor(engine, self.configs[id(engine)].door("slack"))
        self._doors.append((door, engine))
        await door.start()
        return door

    async def discord_door(self, engine: Engine) -> DiscordFrontDoor:
        settings = self.configs[id(engine)].door("discord")
        door = DiscordFrontDoor(engine, settings, guild_ready_timeout=0.05, ready_timeout=5)
        self._doors.append((door, engine))
        await door.start()
        return door

    async def http(self, engine: Engine) -> HttpServer:
        config = self.configs[id(engine)]
        server = HttpServer(engine, config.http, readiness={"database": _healthy(engine)})
        self._servers.append(server)
        await server.start()
        return server

    async def shut(self, engine: Engine) -> None:
        """Stop one parley now, as `parley run` stops (a restart follows, on the same file)."""
        await engine.drain(2.0)
        for door, owner in reversed(self._doors):
            if owner is engine:
                await door.stop(grace=0)
        self._doors = [(d, e) for d, e in self._doors if e is not engine]
        self._engines.remove(engine)
        await close_engine(engine)

    async def close(self) -> None:
        for engine in self._engines:
            await engine.drain(2.0)
        for door, _ in reversed(self._doors):
            await door.stop(grace=0)
        for server in self._servers:
            await server.stop()
        for engine in self._engines:
            await close_engine(engine)


def _healthy(engine: Engine) -> Callable[[], Awaitable[bool]]:
    return engine.store.healthy  # type: ignore[attr-defined,no-any-return,unused-ignore]


@pytest.fixture
async def slack_fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


@pytest.fixture
async def stack(
    upstream: FakeUpstream, slack_fake: FakeSlack, discord_fake: FakeDiscord, tmp_path: Path
) -> AsyncIterator[Stack]:
    built = Stack(upstream, slack_fake, discord_fake, tmp_path / "parley.db")
    yield built
    await built.close()


# -- one conversation, seen from the platform ------------------------------------------------
Shown = Callable[[], str]
"""What the reply to one message shows now, all its messages joined."""


@dataclass
class Chat:
    """A person talking to parley in one channel of one platform."""

    platform: str
    stack: Stack
    engine: Engine
    channel: str
    asked: int = 0

    async def ask(self, text: str) -> Shown:
        """Mention parley with `text`; returns a view of the reply."""
        self.asked += 1
        if self.platform == "slack":
            fake = self.stack.slack
            sent = await fake.mention(self.channel, ALICE, f"{AT_SLACK} {text}")
            ts = sent.payload["event"]["ts"]
            return lambda: fake.text_in(self.channel, ts)
        discord = self.stack.discord
        channel_id = int(self.channel)
        before = len(discord.bot_messages(channel_id))
        await discord.say(f"{AT_DISCORD} {text}", channel_id=channel_id)
        return lambda: "".join(m.content for m in discord.bot_messages(channel_id)[before:])

    async def until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until `condition()` holds after some platform call (no polling)."""
        if self.platform == "slack":
            await self.stack.slack.wait_for(condition, timeout=timeout, what="that reply")
        else:
            await self.stack.discord.until(condition, timeout)

    async def answered(self, timeout: float = 5.0) -> TurnResult:
        """Wait until every message asked so far has had its turn; the last one's result."""
        finished = self.stack.finished[id(self.engine)]
        return (await finished.wait(self.asked, timeout))[-1]

    def rows(self) -> list[tuple[str, str, str]]:
        """(role, content, status) of this channel's stored messages, oldest first."""
        return rows(self.stack.database, self.platform, self.channel)


async def next_turn_works(chat: Chat, upstream: FakeUpstream) -> None:
    """The next message in the channel is answered, shown and remembered."""
    upstream.script(Script(text="All good now."))
    before = len(chat.rows())
    again = await chat.ask("again?")
    await chat.answered()
    await chat.until(lambda: again() == "All good now.")
    assert chat.rows()[before:] == [
        ("user", "again?", "complete"),
        ("assistant", "All good now.", "complete"),
    ]


def rows(database: Path, platform: str, channel: str) -> list[tuple[str, str, str]]:
    with contextlib.closing(sqlite3.connect(database)) as db:
        found = db.execute(
            "SELECT m.role, m.content, m.status FROM messages AS m"
            " JOIN conversations AS c ON c.id = m.conversation_id"
            " WHERE c.platform = ? AND c.channel = ? ORDER BY m.id",
            (platform, channel),
        )
        return [(str(r), str(c), str(s)) for r, c, s in found]


OpenChat = Callable[..., Awaitable[Chat]]


@pytest.fixture
def open_chat(stack: Stack) -> OpenChat:
    """`await open_chat("slack" | "discord", **engine_options)`: a started front door."""

    async def opened(platform: str, **options: Any) -> Chat:
        engine = await stack.engine(**options)
        if platform == "slack":
            await stack.slack_door(engine)
            return Chat(platform, stack, engine, SLACK_CHANNEL)
        await stack.discord_door(engine)
        return Chat(platform, stack, engine, str(p.CHANNEL_ID))

    return opened


# -- log capture -------------------------------------------------------------------------------
Capture = Callable[[Config], io.StringIO]


@pytest.fixture
def capture_logs() -> Iterator[Capture]:
    """Configure logging as `parley` does (debug level, JSON, the settings' secrets) into a
    StringIO; the previous logging setup is restored afterwards."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    noisy = {name: logging.getLogger(name).level for name in ("httpx", "httpx2", "httpcore")}

    def capture(config: Config) -> io.StringIO:
        out = io.StringIO()
        secrets = config.secrets()
        configure_logging(
            level="debug", fmt="json", secrets=secrets, shapes=secret_shapes(), stream=out
        )
        return out

    yield capture
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, value in noisy.items():
        logging.getLogger(name).setLevel(value)


# -- parley as a subprocess --------------------------------------------------------------------
@dataclass
class Spawned:
    """A running `parley` subprocess and everything it wrote so far."""

    process: asyncio.subprocess.Process
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _readers: list[asyncio.Task[None]] = field(default_factory=list)

    def logged(self) -> list[dict[str, Any]]:
        """The JSON log lines on stderr."""
        return [json.loads(line) for line in self.stderr if line.startswith("{")]

    async def until_logged(self, event: str, timeout: float = 20.0) -> dict[str, Any]:
        """Wait for the log line named `event`; fails if parley exits first."""

        def found() -> bool:
            return any(line.get("event") == event for line in self.logged()) or self.ended

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(found)
        lines = [line for line in self.logged() if line.get("event") == event]
        assert lines, f"parley exited before logging {event}: {self.stderr}"
        return lines[0]

    @property
    def ended(self) -> bool:
        return all(task.done() for task in self._readers)

    async def wait(self, timeout: float = 20.0) -> int:
        """The exit code, once both pipes are read to the end."""
        async with asyncio.timeout(timeout):
            await asyncio.gather(*self._readers)
            return await self.process.wait()

    def text(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)


async def spawn(
    command: str, env: dict[str, str], cwd: Path, *, stdin: bytes | None = None
) -> Spawned:
    """Start `parley <command>` with only `env` (and PATH) as its environment."""
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.main", command,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=full_env,
        cwd=str(cwd),
    )  # fmt: skip
    spawned = Spawned(process)
    assert process.stdout is not None and process.stderr is not None
    spawned._readers = [
        asyncio.create_task(_read(process.stdout, spawned.stdout, spawned._changed)),
        asyncio.create_task(_read(process.stderr, spawned.stderr, spawned._changed)),
    ]
    if stdin is not None:
        assert process.stdin is not None
        process.stdin.write(stdin)
        await process.stdin.drain()
        process.stdin.close()
    return spawned


async def _read(stream: asyncio.StreamReader, into: list[str], changed: asyncio.Condition) -> None:
    try:
        async for raw in stream:
            into.append(raw.decode(errors="replace"))
            async with changed:
                changed.notify_all()
    finally:
        async with changed:
            changed.notify_all()


@pytest.fixture
async def processes() -> AsyncIterator[list[Spawned]]:
    """Subprocesses a test started; any still running at the end are killed."""
    started: list[Spawned] = []
    yield started
    for spawned in started:
        if spawned.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                spawned.process.kill()
            await spawned.process.wait()
        for task in spawned._readers:
            task.cancel()
        await asyncio.gather(*spawned._readers, return_exceptions=True)
