"""`parley doctor`: check the configuration and reach every configured service.

Prints a checklist with a fix for each failure; exits 0 only when everything passes.
Services that are not configured are listed as skipped, not failed.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.mode import slack_mode
from core.config import Settings
from core.errors import ConfigError, ParleyError
from core.model import ChatMessage, Role
from models.openai import OpenAILLM
from storage.sqlite import inspect_file

TIMEOUT = 10.0


@dataclass(frozen=True)
class Check:
    """One line of the checklist."""

    name: str
    ok: bool | None  # None: skipped (not configured)
    detail: str
    fix: str = ""


async def run_doctor(settings: Settings, out: TextIO = sys.stdout) -> int:
    """Run every check, print the checklist, return the exit status."""
    checks: list[Callable[[Settings], Awaitable[Check]]] = [
        _database,
        check_upstream,
        _slack,
        _discord,
    ]
    out.write("parley doctor\n")
    out.write(_line(Check("configuration", True, "every PARLEY_* setting is valid")))
    results = []
    for check in checks:
        try:
            async with asyncio.timeout(TIMEOUT * 2):
                result = await check(settings)
        except TimeoutError:
            result = Check(check.__name__.strip("_"), False, "no answer in time", "check the URL")
        results.append(result)
        out.write(_line(result))
    failed = [r for r in results if r.ok is False]
    out.write(f"\n{len(failed)} problem(s) found.\n" if failed else "\nAll good.\n")
    out.flush()
    return 1 if failed else 0


def _line(check: Check) -> str:
    mark = {True: "ok  ", False: "FAIL", None: "skip"}[check.ok]
    text = f"  [{mark}] {check.name}: {check.detail}\n"
    if check.fix:
        text += f"         fix: {check.fix}\n"
    return text


async def _database(settings: Settings) -> Check:
    try:
        return Check("database", True, inspect_file(Path(settings.database)))
    except ConfigError as exc:
        return Check(
            "database", False, exc.user_message, "set PARLEY_DATABASE to a file parley may write"
        )


async def check_upstream(settings: Settings) -> Check:
    """Ask the model server for a one-token answer (also `parley init`'s check)."""
    where = settings.openai_base_url or "OpenAI"
    if not settings.upstream_configured:
        return Check(
            "model server",
            False,
            "not configured",
            "set OPENAI_API_KEY for OpenAI, or OPENAI_BASE_URL for a local server",
        )
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    llm = OpenAILLM(
        api_key=key,
        base_url=settings.openai_base_url,
        connect_timeout=min(settings.connect_timeout, TIMEOUT),
        first_token_timeout=TIMEOUT,
        idle_timeout=TIMEOUT,
        total_timeout=TIMEOUT,
        max_retries=0,
    )
    try:
        async for _ in llm.stream(
            [ChatMessage(Role.USER, "Say OK.")], model=settings.model, max_tokens=1
        ):
            pass
    except ParleyError as exc:
        return Check(
            "model server", False, f"{where}: {exc.detail or exc.user_message}", _upstream_fix(exc)
        )
    finally:
        await llm.close()
    return Check("model server", True, f"{where} answers with model {settings.model}")


def _upstream_fix(exc: ParleyError) -> str:
    name = type(exc).__name__
    return {
        "UpstreamAuthError": "check OPENAI_API_KEY",
        "UpstreamModelNotFound": "set PARLEY_MODEL to a model the server serves",
        "UpstreamUnreachable": "start the server, or check OPENAI_BASE_URL (usually ending in /v1)",
    }.get(name, "check OPENAI_BASE_URL and the server's logs")


async def _slack(settings: Settings) -> Check:
    try:
        mode = slack_mode(settings)  # the very check `parley run` makes
    except ConfigError as exc:
        return Check(
            "slack",
            False,
            exc.user_message.removeprefix("parley: "),
            "see README, Connect to Slack",
        )
    if mode is None:
        return Check("slack", None, "not configured (SLACK_BOT_TOKEN is not set)")
    assert settings.slack_bot_token is not None
    base = settings.slack_api_url.rstrip("/") + "/"
    async with aiohttp.ClientSession() as session:
        client = AsyncWebClient(
            token=settings.slack_bot_token.get_secret_value(), base_url=base, session=session
        )
        try:
            auth = await client.auth_test()
            if settings.slack_app_token is not None:
                await client.apps_connections_open(
                    app_token=settings.slack_app_token.get_secret_value()
                )
        except SlackApiError as exc:
            error = exc.response.get("error", "error")
            return Check("slack", False, f"Slack answered {error}", _slack_fix(str(error)))
        except (aiohttp.ClientError, OSError) as exc:
            return Check(
                "slack",
                False,
                f"cannot reach {base} ({type(exc).__name__})",
                "check SLACK_API_URL and the network",
            )
    way = "Socket Mode" if mode == "socket" else "HTTP Events API"
    return Check("slack", True, f"signed in as {auth.get('user')} in {auth.get('team')} ({way})")


def _slack_fix(error: str) -> str:
    if error in ("invalid_auth", "not_authed", "token_revoked", "account_inactive"):
        return "check SLACK_BOT_TOKEN (xoxb-...) and SLACK_APP_TOKEN (xapp-..., connections:write)"
    return "see https://api.slack.com/methods for this error"


async def _discord(settings: Settings) -> Check:
    if settings.discord_bot_token is None:
        return Check("discord", None, "not configured (DISCORD_BOT_TOKEN is not set)")
    url = settings.discord_api_url.rstrip("/") + "/users/@me"
    headers = {"Authorization": f"Bot {settings.discord_bot_token.get_secret_value().strip()}"}
    try:
        async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as r:
            body = await r.json(content_type=None) if r.status < 500 else {}
            status = r.status
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return Check(
            "discord",
            False,
            f"cannot reach {url} ({type(exc).__name__})",
            "check DISCORD_API_URL and the network",
        )
    if status == 401:
        return Check(
            "discord",
            False,
            "Discord rejected the token (401)",
            "copy the bot token again from the developer portal (Bot > Reset Token)",
        )
    if status != 200:
        return Check("discord", False, f"Discord answered HTTP {status}", "try again later")
    return Check("discord", True, f"signed in as {body.get('username', '?')}")
