"""Crash suite: SIGKILL `parley run` in the middle of a streamed Slack reply, restart it on
the same database, and check nothing is lost, the reply is marked interrupted in memory and
on Slack, and the conversation goes on. Also: a second parley on the same file is refused."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core.transcript import CRASH_NOTE
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_payloads import APP_TOKEN, BOT_TOKEN, BOT_USER_ID
from tests.fakes.upstream import FakeUpstream, Script
from tests.support.engine import eventually
from tests.support.running import run_to_exit, start_run

CHANNEL = "C0CRASH"
ALICE = "U0ALICE"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


def environment(upstream: FakeUpstream, slack: FakeSlack, database: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "OPENAI_BASE_URL": upstream.base_url,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": APP_TOKEN,
        "SLACK_API_URL": slack.api_url,
        "PARLEY_DATABASE": str(database),
        "PARLEY_HTTP_PORT": "0",
        "PARLEY_UPSTREAM_RETRIES": "0",
        "PARLEY_FLUSH_INTERVAL": "0.1",
        "PARLEY_PLACEHOLDER_AFTER": "0.05",
    }


async def start(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    """`parley run`, returned once it logged `parley_started`."""
    return (await start_run(env, cwd)).process


def rows(database: Path) -> list[tuple[str, str, str, Any]]:
    with sqlite3.connect(database) as db:
        return list(
            db.execute("SELECT role, content, status, platform_ref FROM messages ORDER BY id")
        )


def integrity(database: Path) -> str:
    with sqlite3.connect(database) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


async def test_sigkill_mid_reply_then_restart(
    upstream: FakeUpstream, slack: FakeSlack, tmp_path: Path
) -> None:
    database = tmp_path / "parley.db"
    env = environment(upstream, slack, database)
    words = " ".join(f"word{n}" for n in range(400))
    upstream.script(Script(text=words, chunk_chars=10, interval=0.02))
    first = await start(env, tmp_path)
    try:
        sent = await slack.mention(CHANNEL, ALICE, f"<@{BOT_USER_ID}> tell me a long story")
        ts = sent.payload["event"]["ts"]
        # Kill once the reply is visible and its place is checkpointed: mid-stream for sure.
        await eventually(lambda: len(rows(database)) == 2 and rows(database)[1][3] is not None)
        await slack.wait_for(lambda: len(slack.text_in(CHANNEL, ts)) > 30)
        first.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(first.wait(), 10) == -signal.SIGKILL
    finally:
        if first.returncode is None:
            first.kill()
    shown_when_killed = slack.text_in(CHANNEL, ts)
    assert shown_when_killed != words  # it really was cut off

    upstream.script(Script(text="Sorry about that. Here it is again."))
    second = await start(env, tmp_path)
    try:
        [reply] = slack.thread(CHANNEL, ts)
        await slack.wait_for(lambda: reply.text.endswith(CRASH_NOTE), what="the repair edit")
        assert words.startswith(reply.text.removesuffix(CRASH_NOTE).rstrip("\n"))
        user, assistant = rows(database)
        assert user[:3] == ("user", "tell me a long story", "complete")
        assert assistant[2] == "interrupted" and words.startswith(assistant[1])
        await eventually(lambda: rows(database)[1][3] is None)  # repaired once, not again

        again = await slack.mention(CHANNEL, ALICE, f"<@{BOT_USER_ID}> try again please")
        again_ts = again.payload["event"]["ts"]
        await slack.wait_for(
            lambda: slack.text_in(CHANNEL, again_ts) == "Sorry about that. Here it is again."
        )
        prompt = [m["content"] for m in upstream.requests[-1]["body"]["messages"]]
        assert "tell me a long story" in prompt and prompt[-1] == "try again please"
    finally:
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), 20) == 0
    assert integrity(database) == "ok"


async def test_a_second_parley_on_the_same_database_is_refused(
    upstream: FakeUpstream, slack: FakeSlack, tmp_path: Path
) -> None:
    env = environment(upstream, slack, tmp_path / "parley.db")
    first = await start(env, tmp_path)
    try:
        status, lines = await run_to_exit(
            env, tmp_path, within=20, hung="a second parley did not stop"
        )
        assert status == 2
        assert lines[-1] == (
            f"parley: another parley (pid {first.pid}) is using {tmp_path / 'parley.db'};"
            " SQLite allows one parley per database file. Stop it first, or set"
            " PARLEY_DATABASE to another file."
        )
    finally:
        first.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(first.wait(), 20) == 0
    assert integrity(tmp_path / "parley.db") == "ok"
