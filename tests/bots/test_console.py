"""`parley console` as a real subprocess against the fake upstream."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.fakes.upstream import FakeUpstream, Script


async def console(
    upstream: FakeUpstream, database: Path, lines: str, *args: str
) -> tuple[int, str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "OPENAI_BASE_URL": upstream.base_url,
        "PARLEY_DATABASE": str(database),
        "PARLEY_UPSTREAM_RETRIES": "0",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bots.main",
        "console",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=str(database.parent),
    )
    out, err = await asyncio.wait_for(process.communicate(lines.encode()), timeout=30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_console_streams_the_reply(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.script(Script(text="Hi! I am the fake model, streaming in pieces.", interval=0.01))
    code, out, err = await console(upstream, tmp_path / "p.db", "hello there\n")
    assert code == 0, err
    assert "parley> Hi! I am the fake model, streaming in pieces.\n" in out
    assert err == ""  # console keeps log lines out of the chat unless asked


async def test_console_memory_persists_across_runs_and_reset_forgets(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    database = tmp_path / "p.db"
    await console(upstream, database, "my favourite colour is green\n", "--channel", "me")
    await console(upstream, database, "what is my favourite colour?\n", "--channel", "me")
    contents = [m["content"] for m in upstream.requests[-1]["body"]["messages"]]
    assert "my favourite colour is green" in contents

    code, out, _ = await console(
        upstream, database, "/reset\nanything left?\n/quit\nnot sent\n", "--channel", "me"
    )
    assert code == 0 and "I forgot this channel's conversation (4 messages)" in out
    contents = [m["content"] for m in upstream.requests[-1]["body"]["messages"]]
    assert contents[1:] == ["anything left?"]
    assert len(upstream.requests) == 3  # nothing after /quit


async def test_console_channels_are_separate(upstream: FakeUpstream, tmp_path: Path) -> None:
    database = tmp_path / "p.db"
    await console(upstream, database, "alpha secret\n", "--channel", "a")
    await console(upstream, database, "beta question\n", "--channel", "b")
    contents = [m["content"] for m in upstream.requests[-1]["body"]["messages"]]
    assert "alpha secret" not in contents


async def test_console_shows_an_upstream_failure_as_a_sentence(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.script(Script(status=401))
    code, out, _ = await console(upstream, tmp_path / "p.db", "hello\n/help\n")
    assert code == 0
    assert "rejected parley's API key" in out
    assert "memory on|off" in out
