"""The `parley` command: the composition root that wires front doors, engine and storage."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol, TextIO

import structlog
from aiohttp import web

from bots.console import run_console
from bots.http.server import HttpServer
from bots.platforms import configured_platforms
from bots.setup import interactive, run_setup
from core.config import GROUPS, Settings, describe_settings, load_settings
from core.engine import Engine
from core.errors import ConfigError, StorageError
from core.logs import SecretRedactor, configure_logging
from core.retention import prune_forever
from models.openai import OpenAILLM
from storage.sqlite import SqliteStore, unusable

log = structlog.get_logger(__name__)

NO_UPSTREAM = (
    "parley: no model server configured: set OPENAI_API_KEY for OpenAI, or OPENAI_BASE_URL "
    "for a local or compatible server (e.g. OPENAI_BASE_URL=http://localhost:11434/v1 for Ollama)."
)
NO_TERMINAL = (
    "parley: `parley init` asks its questions in a terminal; without one, set OPENAI_API_KEY "
    "(OpenAI) or OPENAI_BASE_URL and PARLEY_MODEL (a local server) in the environment or .env."
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


COMMANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "run": (
        "Start every chat platform whose credentials are set (Slack, Discord), the HTTP server"
        " (health, metrics, Slack events, the chat API) and, when no platform is set and you"
        " are at a terminal, the terminal chat. With no model server configured, at a"
        " terminal, it first runs the set-up (`parley init`).",
        tuple(GROUPS),
    ),
    "console": (
        "Chat with parley in this terminal; the conversation is remembered like a channel's."
        " Logs go to PARLEY_LOG_FILE, not into the chat.",
        ("model server", "conversation", "streaming", "limits", "logging"),
    ),
    "doctor": (
        "Check the configuration and reach every configured service (the database, the"
        " model server, Slack, Discord); print a fix for each failure. Exits 0 only when"
        " everything passes; creates no file.",
        ("model server", "conversation", "slack", "discord", "logging"),
    ),
    "init": (
        "Set up the model server interactively: OpenAI or a local server, checked with one"
        " tiny completion, then saved to ./.env (readable only by you).",
        ("model server",),
    ),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parley",
        description="An LLM chat bot for Slack, Discord, the terminal and HTTP.",
        epilog="Settings come from the environment or ./.env; `parley COMMAND --help` lists"
        " the ones each command reads. Without a command, `parley run`.",
    )
    parser.add_argument("--version", action="version", version=f"parley {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (what, groups) in COMMANDS.items():
        sub = commands.add_parser(
            name,
            help=what.split(". ")[0].split(" (")[0].lower().rstrip("."),
            description=what,
            epilog="settings it reads:\n" + describe_settings(groups),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if name == "console":
            sub.add_argument("--channel", default="default", help="the conversation to continue")
    return parser


def _version() -> str:
    try:
        return importlib.metadata.version("parley")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `parley` console script."""
    args = _parser().parse_args(argv)
    command = args.command or "run"
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc.user_message, file=sys.stderr)
        return 2
    at_terminal = interactive(sys.stdin, sys.stdout)
    if command == "init" or (command in ("run", "console") and not settings.upstream_configured):
        if not at_terminal:
            print(NO_UPSTREAM if command != "init" else NO_TERMINAL, file=sys.stderr)
            return 2
        if not asyncio.run(run_setup(settings, stdin=sys.stdin, out=sys.stdout)):
            return 2
        if command == "init":
            return 0
        settings = load_settings()  # with what the set-up saved in .env
    chat_here = command == "console" or (
        command == "run" and at_terminal and not _platforms(settings)
    )
    _log(settings, command, chat_here)
    if command == "doctor":
        from bots.doctor import run_doctor

        return asyncio.run(run_doctor(settings))
    try:
        return asyncio.run(_serve(settings, command, getattr(args, "channel", "default")))
    except ConfigError as exc:
        # Scrubbed like a log line: a platform's error text may echo a token.
        print(SecretRedactor(settings.secrets()).scrub(exc.user_message), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _platforms(settings: Settings) -> dict[str, str]:
    try:
        return configured_platforms(settings)
    except ConfigError:
        return {"slack": "incomplete"}  # `run` stops on it with the sentence


def _log(settings: Settings, command: str, chat_here: bool) -> None:
    """Logs go to stderr, except while the terminal chat runs: then into PARLEY_LOG_FILE, so
    the chat shows only the conversation (a failure is its sentence, once). `doctor` logs
    warnings only unless PARLEY_LOG_LEVEL is set (in the environment or .env)."""
    level = settings.log_level
    if command == "doctor" and "log_level" not in settings.model_fields_set:
        level = "warning"
    stream: TextIO | None = None
    if chat_here:
        try:
            settings.log_path.parent.mkdir(parents=True, exist_ok=True)
            stream = open(settings.log_path, "a", encoding="utf-8")  # noqa: SIM115 - for the process
        except OSError:
            stream, level = sys.stderr, "error"  # nowhere to write: errors only
    configure_logging(
        level=level, fmt=settings.log_format, secrets=settings.secrets(), stream=stream
    )


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
    pruning: asyncio.Task[None] | None = None
    try:
        try:
            interrupted = await engine.store.mark_interrupted()
        except StorageError as exc:  # a file that opened but cannot be written or read
            raise unusable(Path(settings.database), exc) from None
        if interrupted:
            log.info("interrupted_replies_marked", count=interrupted)
        pruning = asyncio.create_task(prune_forever(engine.store, settings.retention_days))
        if command == "console":
            await run_console(engine, channel=channel, stdin=sys.stdin, out=sys.stdout)
        else:
            await _run(engine, settings)
        return 0
    finally:
        if pruning is not None:
            pruning.cancel()
            await asyncio.gather(pruning, return_exceptions=True)
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
    platforms = configured_platforms(settings)  # what `parley doctor` checks, too
    if "slack" in platforms:
        from bots.slack.app import SlackFrontDoor

        slack = SlackFrontDoor(engine, settings, serve_http=False)
        doors["slack"] = slack
        if slack.mode == "http":
            mounts.append(slack.attach)
    if "discord" in platforms:
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
