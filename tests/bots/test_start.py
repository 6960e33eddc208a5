"""`parley run` at start on a database it cannot use: one line naming the file and what to
do, exit status 2, within seconds — never a hang, never a traceback (a supervisor restarts
on the status and a person reads the line). And a second parley on the same file, reached
by another name (a symlink, a hard link), is refused like one on the same path."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.upstream import FakeUpstream
from tests.support.running import run_to_exit, spawn_run, start_run

ROOT = Path(__file__).resolve().parents[2]


def env_for(upstream: FakeUpstream, database: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "OPENAI_BASE_URL": upstream.base_url,
        "PARLEY_DATABASE": str(database),
        "PARLEY_HTTP_PORT": "0",
        "PARLEY_API_TOKEN": "a-token-so-parley-run-keeps-serving",
    }


async def run_once(env: dict[str, str], cwd: Path) -> tuple[int, list[str]]:
    """`parley run` until it exits (it must, quickly): its status and stderr lines."""
    return await run_to_exit(env, cwd, within=15, hung="parley hung on a database it cannot use")


async def chattr(flag: str, path: Path) -> int:
    done = await asyncio.create_subprocess_exec("chattr", flag, str(path))
    return await done.wait()


def a_parley_database(path: Path, messages: int = 400) -> None:
    """A real parley database with some history (so it spans many pages)."""
    from storage.sqlite.store import MIGRATIONS

    with sqlite3.connect(path) as db:
        for number, step in enumerate(MIGRATIONS, start=1):
            for sql in step:
                db.execute(sql)
            db.execute(f"PRAGMA user_version = {number}")
        db.execute(
            "INSERT INTO conversations (platform, workspace, channel, created_at, updated_at)"
            " VALUES ('api', 'default', 'c', 0, 0)"
        )
        db.executemany(
            "INSERT INTO messages (conversation_id, role, content, status, tokens, created_at)"
            " VALUES (1, 'user', ?, 'complete', 10, 0)",
            [(f"message {n} " + "x" * 300,) for n in range(messages)],
        )


def not_a_database(path: Path) -> None:
    path.write_bytes(b"these are my notes, not a database\n" * 200)


def damaged(path: Path) -> None:
    a_parley_database(path)
    data = bytearray(path.read_bytes())
    page = 4096
    for start in range(2 * page, len(data) - page, 3 * page):  # b-tree pages, not the header
        data[start : start + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (not_a_database, "it is not a SQLite database"),
        (damaged, "it is damaged: restore it from a backup"),
    ],
    ids=["not-a-database", "damaged"],
)
async def test_a_database_parley_cannot_use_stops_it_with_one_line(
    upstream: FakeUpstream, tmp_path: Path, make: Callable[[Path], None], says: str
) -> None:
    database = tmp_path / "parley.db"
    make(database)
    status, lines = await run_once(env_for(upstream, database), tmp_path)
    assert status == 2
    assert [line for line in lines if line.startswith("parley:")] == lines[-1:]
    assert (
        lines[-1].startswith(f"parley: cannot use the database {database} (") and says in lines[-1]
    )
    assert not any("Traceback" in line for line in lines)


async def test_a_read_only_database_stops_it_with_one_line(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    database = tmp_path / "parley.db"
    a_parley_database(database)
    database.chmod(0o444)
    # root writes any file whatever its mode: make it immutable for root too (ext4, xfs)
    frozen = os.geteuid() == 0 and shutil.which("chattr") is not None
    if frozen and await chattr("+i", database):
        pytest.skip("running as root where chattr +i is not possible")
    if os.geteuid() == 0 and not frozen:
        pytest.skip("running as root without chattr: no file is read-only to us")
    try:
        status, lines = await run_once(env_for(upstream, database), tmp_path)
    finally:
        if frozen:
            assert await chattr("-i", database) == 0
    assert status == 2, lines
    assert lines[-1].startswith(f"parley: cannot use the database {database}")
    assert "parley may not write it" in lines[-1]
    assert not any("Traceback" in line for line in lines)


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
async def test_another_name_for_the_same_database_is_refused(
    upstream: FakeUpstream, tmp_path: Path, link: str
) -> None:
    database = tmp_path / "parley.db"
    first = (await start_run(env_for(upstream, database), tmp_path)).process
    try:
        other = tmp_path / "other.db"
        if link == "symlink":
            other.symlink_to(database)
        else:
            os.link(database, other)
        status, lines = await run_once(env_for(upstream, other), tmp_path)
        assert status == 2
        assert lines[-1].startswith(f"parley: another parley (pid {first.pid}) is using {other}")
    finally:
        first.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(first.wait(), 20) == 0


async def test_readiness_says_not_ready_when_the_disk_is_full(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    # A full disk for this process: no file may grow past 512 KiB (RLIMIT_FSIZE), as on a
    # filesystem that has run out of room; each readiness probe is a real write to the WAL.
    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a refused write fails, not the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (512 * 1024, 512 * 1024))

    env = env_for(upstream, tmp_path / "parley.db")
    process = await spawn_run(env, tmp_path, preexec_fn=small_disk)
    try:
        assert process.stderr is not None
        port = None
        while port is None:
            line = await asyncio.wait_for(process.stderr.readline(), 20)
            assert line, "parley exited before it started"
            if b'"parley_started"' in line:
                port = json.loads(line)["http_port"]
        ready: list[int] = []
        async with aiohttp.ClientSession() as session:
            for _ in range(400):  # each probe appends a page to the WAL: the file fills up
                async with session.get(f"http://127.0.0.1:{port}/readyz") as answer:
                    ready.append(answer.status)
                if answer.status == 503:
                    break
            async with session.get(f"http://127.0.0.1:{port}/healthz") as alive:
                assert alive.status == 200  # not ready, but alive
        assert ready[0] == 200 and ready[-1] == 503
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)
