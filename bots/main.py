"""The `parley` command: the composition root that wires front doors, engine and storage."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import structlog
from aiohttp import web

from bots.console import run_console
from bots.http.server import HttpServer
from core.config import Settings, load_settings
from core.engine import Engine
from core.errors import ConfigError
from core.logs import SecretRedactor, configure_logging
from core.openai_llm import OpenAILLM
from storage.sqlite import SqliteStore

log = structlog.get_logger(__name__)

NO_UPSTREAM = (
    "parley: no model server configured: set OPENAI_API_KEY for OpenAI, or OPENAI_BASE_URL "
    "for a local or compatible server (e.g. OPENAI_BASE_URL=http://localhost:11434/v1 for Ollama)."
)
NO_PLATFORM = (
    "parley: no chat platform configured (set SLACK_BOT_TOKEN with SLACK_APP_TOKEN or "
    "SLACK_SIGNING_SECRET for Slack, DISCORD_BOT_TOKEN for Discord); starting the terminal chat."
)


class FrontDoor(Protocol):
    """What the composition root needs from a platform adapter."""

    @property
    def connected(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self, grace: float = ...) -> None: ...


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description="An LLM chat bot.")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="start every platform whose credentials are set")
    console = commands.add_parser("console", help="chat in this terminal")
    console.add_argument("--channel", default="default", help="conversation to continue")
    commands.add_parser("doctor", help="check the configuration and every configured service")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `parley` console script."""
    args = _parser().parse_args(argv)
    command = args.command or "run"
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc.user_message, file=sys.stderr)
        return 2
    quiet = command in ("console", "doctor") and "PARLEY_LOG_LEVEL" not in os.environ
    configure_logging(
        level="warning" if quiet else settings.log_level,
        fmt=settings.log_format,
        secrets=settings.secrets(),
    )
    if command == "doctor":
        from bots.doctor import run_doctor

        return asyncio.run(run_doctor(settings))
    if not settings.upstream_configured:
        print(NO_UPSTREAM, file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(settings, command, getattr(args, "channel", "default")))
    except ConfigError as exc:
        # Scrubbed like a log line: a platform's error text may echo a token.
        print(SecretRedactor(settings.secrets()).scrub(exc.user_message), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def build_llm(settings: Settings) -> OpenAILLM:
    """The one upstream client of the process."""
    return OpenAILLM(
        api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
        base_url=settings.openai_base_url,
        connect_timeout=settings.connect_timeout,
        first_token_timeout=settings.first_token_timeout,
        idle_timeout=settings.idle_timeout,
        total_timeout=settings.total_timeout,
        max_retries=settings.upstream_retries,
    )


async def open_engine(settings: Settings, *, exclusive: bool = False) -> Engine:
    """The engine with its store and upstream client, wired as `parley` wires them."""
    store = SqliteStore(settings.database, exclusive=exclusive)
    await store.open()
    return Engine(settings, store, build_llm(settings))


async def close_engine(engine: Engine) -> None:
    """Close what `open_engine` opened."""
    await engine.llm.close()
    await engine.store.close()


async def _serve(settings: Settings, command: str, channel: str) -> int:
    engine = await open_engine(settings, exclusive=True)
    store = engine.store
    interrupted = await store.mark_interrupted()
    if interrupted:
        log.info("interrupted_replies_marked", count=interrupted)
    try:
        if command == "console":
            await run_console(engine, channel=channel, stdin=sys.stdin, out=sys.stdout)
            return 0
        await _run(engine, settings)
        return 0
    finally:
        await close_engine(engine)


async def _run(engine: Engine, settings: Settings) -> None:
    """Serve every configured front door until SIGTERM/SIGINT (or console EOF)."""
    doors, mounts = _front_doors(engine, settings)
    checks: dict[str, Callable[[], Awaitable[bool]] | Callable[[], bool]] = {
        "database": engine.store.healthy
    }
    for name, door in doors.items():
        checks[name] = _connected(door)
    server = HttpServer(engine, settings, readiness=checks)
    for mount in mounts:
        mount(server.app)
    stop = asyncio.Event()
    _on_signals(stop)
    try:
        await server.start()
    except OSError as exc:
        raise ConfigError(
            f"parley: can't listen on {settings.http_host}:{settings.http_port} ({exc.strerror}):"
            " set PARLEY_HTTP_PORT to a free port."
        ) from None
    started: list[FrontDoor] = []
    try:
        for door in doors.values():
            await door.start()
            started.append(door)
        log.info("parley_started", platforms=sorted(doors), http_port=server.port)
        if not doors:
            print(NO_PLATFORM, file=sys.stderr)
            console = asyncio.create_task(
                run_console(engine, channel="default", stdin=sys.stdin, out=sys.stdout)
            )
            if settings.api_token is None:  # nothing else to serve once the terminal closes
                console.add_done_callback(lambda _: stop.set())
        await stop.wait()
        log.info("parley_stopping", grace=settings.shutdown_grace)
        await engine.drain(settings.shutdown_grace)
    finally:
        for door in reversed(started):
            with contextlib.suppress(Exception):
                await door.stop(grace=0)
        await server.stop()
    log.info("parley_stopped")


def _front_doors(
    engine: Engine, settings: Settings
) -> tuple[dict[str, FrontDoor], list[Callable[[web.Application], None]]]:
    """The platforms whose credentials are set (imported only then: start-up stays fast),
    and the routes they need on the one HTTP server."""
    doors: dict[str, FrontDoor] = {}
    mounts: list[Callable[[web.Application], None]] = []
    if settings.slack_bot_token is not None:
        from bots.slack.app import SlackFrontDoor

        slack = SlackFrontDoor(engine, settings, serve_http=False)
        doors["slack"] = slack
        if slack.mode == "http":
            mounts.append(slack.attach)
    if settings.discord_bot_token is not None:
        from bots.discord.client import DiscordFrontDoor

        doors["discord"] = DiscordFrontDoor(engine, settings)
    return doors, mounts


def _connected(door: FrontDoor) -> Callable[[], bool]:
    return lambda: door.connected


def _on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


if __name__ == "__main__":
    sys.exit(main())
