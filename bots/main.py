"""The `parley` command: the composition root that wires front doors, engine and storage."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

import structlog

from bots.console import run_console
from core.config import Settings, load_settings
from core.engine import Engine
from core.errors import ConfigError
from core.logs import configure_logging
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description="An LLM chat bot.")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="start every platform whose credentials are set")
    console = commands.add_parser("console", help="chat in this terminal")
    console.add_argument("--channel", default="default", help="conversation to continue")
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
    quiet_console = command == "console" and "PARLEY_LOG_LEVEL" not in os.environ
    configure_logging(
        level="warning" if quiet_console else settings.log_level,
        fmt=settings.log_format,
        secrets=settings.secrets(),
    )
    if not settings.upstream_configured:
        print(NO_UPSTREAM, file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(settings, command, getattr(args, "channel", "default")))
    except ConfigError as exc:
        print(exc.user_message, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


async def _serve(settings: Settings, command: str, channel: str) -> int:
    store = SqliteStore(settings.database)
    await store.open()
    interrupted = await store.mark_interrupted()
    if interrupted:
        log.info("interrupted_replies_marked", count=interrupted)
    llm = OpenAILLM(
        api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
        base_url=settings.openai_base_url,
        connect_timeout=settings.connect_timeout,
        first_token_timeout=settings.first_token_timeout,
        idle_timeout=settings.idle_timeout,
        total_timeout=settings.total_timeout,
        max_retries=settings.upstream_retries,
    )
    engine = Engine(settings, store, llm)
    try:
        if command == "run":
            print(NO_PLATFORM, file=sys.stderr)
        await run_console(engine, channel=channel, stdin=sys.stdin, out=sys.stdout)
        return 0
    finally:
        await llm.close()
        await store.close()


if __name__ == "__main__":
    sys.exit(main())
