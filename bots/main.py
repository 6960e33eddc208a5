"""The `parley` command: the composition root that wires front doors, engine and storage."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TextIO

import structlog

from bots import registry
from bots.config import Config, StoreChoice, load_config, secret_shapes, setting_classes
from bots.console import run_console
from bots.faces import FrontDoor
from bots.http.server import HttpServer
from bots.http.settings import HttpSettings
from bots.setup import interactive, run_setup
from core.config import AdapterSettings, EngineSettings, describe
from core.engine import Engine
from core.errors import ConfigError, StorageError
from core.logs import configure_logging
from core.retention import prune_forever

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

COMMANDS: dict[str, tuple[str, Callable[[], list[type[AdapterSettings]]]]] = {
    "run": (
        "Start every chat platform whose credentials are set (Slack, Discord), the HTTP server"
        " (health, metrics, Slack events, the chat API) and, when no platform is set and you"
        " are at a terminal, the terminal chat. With no model server configured, at a"
        " terminal, it first runs the set-up (`parley init`).",
        setting_classes,
    ),
    "console": (
        "Chat with parley in this terminal; the conversation is remembered like a channel's."
        " Logs go to PARLEY_LOG_FILE, not into the chat.",
        lambda: [EngineSettings, StoreChoice, *(m.SETTINGS for m in registry.MODELS)],
    ),
    "doctor": (
        "Check the configuration and reach every configured service (the database, the"
        " model server, Slack, Discord); print a fix for each failure. Exits 0 only when"
        " everything passes; creates no file.",
        lambda: [c for c in setting_classes() if c is not HttpSettings],
    ),
    "init": (
        "Set up the model server interactively: OpenAI or a local server, checked with one"
        " tiny completion, then saved to ./.env (readable only by you).",
        lambda: [m.SETTINGS for m in registry.MODELS],
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
    for name, (what, reads) in COMMANDS.items():
        sub = commands.add_parser(
            name,
            help=what.split(". ")[0].split(" (")[0].lower().rstrip("."),
            description=what,
            epilog="settings it reads:\n" + describe(reads()),
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
        config = load_config()
    except ConfigError as exc:
        print(exc.user_message, file=sys.stderr)
        return 2
    at_terminal = interactive(sys.stdin, sys.stdout)
    model = registry.MODELS[0]
    if command == "init" or (command in ("run", "console") and not model.configured(config.model)):
        if not at_terminal:
            print(NO_UPSTREAM if command != "init" else NO_TERMINAL, file=sys.stderr)
            return 2
        if not asyncio.run(run_setup(config.model, stdin=sys.stdin, out=sys.stdout)):
            return 2
        if command == "init":
            return 0
        config = load_config()  # with what the set-up saved in .env
    chat_here = command == "console" or (
        command == "run" and at_terminal and not _platforms(config)
    )
    _log(config, command, chat_here)
    if command == "doctor":
        from bots.doctor import run_doctor

        return asyncio.run(run_doctor(config))
    try:
        return asyncio.run(_serve(config, command, getattr(args, "channel", "default")))
    except ConfigError as exc:
        # Scrubbed like a log line: a platform's error text may echo a token.
        print(config.redactor().scrub(exc.user_message), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _platforms(config: Config) -> list[str]:
    """The front doors whose settings turn them on."""
    try:
        return [door.NAME for door in registry.DOORS if door.configured(config.door(door.NAME))]
    except ConfigError:
        return ["incomplete"]  # `run` stops on it with the sentence


def _log(config: Config, command: str, chat_here: bool) -> None:
    """Logs go to stderr, except while the terminal chat runs: then into PARLEY_LOG_FILE, so
    the chat shows only the conversation (a failure is its sentence, once). `doctor` logs
    warnings only unless PARLEY_LOG_LEVEL is set (in the environment or .env)."""
    settings = config.engine
    level = settings.log_level
    if command == "doctor" and "log_level" not in settings.model_fields_set:
        level = "warning"
    stream: TextIO | None = None
    if chat_here:
        try:
            config.log_path.parent.mkdir(parents=True, exist_ok=True)
            stream = open(config.log_path, "a", encoding="utf-8")  # noqa: SIM115 - for the process
        except OSError:
            stream, level = sys.stderr, "error"  # nowhere to write: errors only
    configure_logging(
        level=level,
        fmt=settings.log_format,
        secrets=config.secrets(),
        shapes=secret_shapes(),
        stream=stream,
    )


async def open_engine(config: Config, *, exclusive: bool = False) -> Engine:
    """The engine with its store and model client, wired as `parley` wires them: the store
    PARLEY_DATABASE's form names, the one model client of the process."""
    store = await config.store_package.open_store(config.database, exclusive=exclusive)
    return Engine(config.engine, store, registry.MODELS[0].open(config.model))


async def close_engine(engine: Engine) -> None:
    """Close what `open_engine` opened."""
    await engine.llm.close()
    await engine.store.close()


async def _serve(config: Config, command: str, channel: str) -> int:
    engine = await open_engine(config, exclusive=True)
    pruning: asyncio.Task[None] | None = None
    try:
        try:
            interrupted = await engine.store.mark_interrupted()
        except StorageError as exc:  # a store that opened but cannot be written or read
            raise config.store_package.unusable(config.database, exc) from None
        if interrupted:
            log.info("interrupted_replies_marked", count=interrupted)
        pruning = asyncio.create_task(prune_forever(engine.store, config.engine.retention_days))
        if command == "console":
            await run_console(engine, channel=channel, stdin=sys.stdin, out=sys.stdout)
        else:
            await _run(engine, config)
        return 0
    finally:
        if pruning is not None:
            pruning.cancel()
            await asyncio.gather(pruning, return_exceptions=True)
        await close_engine(engine)


async def _run(engine: Engine, config: Config) -> None:
    """Serve every configured front door until SIGTERM/SIGINT (or console EOF)."""
    doors = _front_doors(engine, config)
    checks: dict[str, Callable[[], Awaitable[bool]] | Callable[[], bool]] = {
        "database": engine.store.healthy
    }
    for name, door in doors.items():
        checks[name] = _connected(door)
    server = HttpServer(engine, config.http, readiness=checks)
    for door in doors.values():
        server.app.add_routes(door.routes())
    stop = asyncio.Event()
    _on_signals(stop)
    try:
        await server.start()
    except OSError as exc:
        where = f"{config.http.http_host}:{config.http.http_port}"
        raise ConfigError(
            f"parley: can't listen on {where} ({exc.strerror}):"
            " set PARLEY_HTTP_PORT to a free port."
        ) from None
    started: list[FrontDoor] = []
    grace = config.engine.shutdown_grace
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
            if config.http.api_token is None:  # nothing else to serve once the terminal closes
                console.add_done_callback(lambda _: stop.set())
        await stop.wait()
        log.info("parley_stopping", grace=grace)
        await engine.drain(grace)
    finally:
        for door in reversed(started):
            with contextlib.suppress(Exception):
                await door.stop(grace=0)
        await server.stop()
    log.info("parley_stopped")


def _front_doors(engine: Engine, config: Config) -> dict[str, FrontDoor]:
    """The front doors whose settings turn them on (each imports its platform's library
    only when built: start-up stays fast), in the registry's order."""
    doors: dict[str, FrontDoor] = {}
    for package in registry.DOORS:
        settings = config.door(package.NAME)
        if package.configured(settings):  # what `parley doctor` checks, too
            doors[package.NAME] = package.build(engine, settings, config.state_file)
    return doors


def _connected(door: FrontDoor) -> Callable[[], bool]:
    return lambda: door.connected


def _on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


if __name__ == "__main__":
    sys.exit(main())
