"""`parley run` as a real subprocess, for the tests that need the whole program."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Running:
    """A started `parley run`, and its JSON log lines as they come."""

    process: asyncio.subprocess.Process
    log: list[dict[str, Any]]
    reader: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def started(self) -> dict[str, Any]:
        """The `parley_started` line (it names the bound HTTP port)."""
        return next(line for line in self.log if line["event"] == "parley_started")


async def spawn_run(env: dict[str, str], cwd: Path, **options: Any) -> asyncio.subprocess.Process:
    """`parley run` as a subprocess: no stdin, stderr (its log) piped; `options` go to
    asyncio.create_subprocess_exec (e.g. preexec_fn)."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.main", "run",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=str(cwd),
        **options,
    )  # fmt: skip


async def run_to_exit(
    env: dict[str, str], cwd: Path, *, within: float, hung: str
) -> tuple[int, list[str]]:
    """`parley run` that must exit within `within` seconds (else AssertionError(`hung`)):
    its status and stderr lines."""
    process = await spawn_run(env, cwd)
    try:
        _, err = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(hung) from None
    assert process.returncode is not None
    return process.returncode, err.decode().strip().splitlines()


async def start_run(env: dict[str, str], cwd: Path) -> Running:
    """Start `parley run`; return once it logged `parley_started`."""
    process = await spawn_run(env, cwd)
    log: list[dict[str, Any]] = []
    assert process.stderr is not None
    async with asyncio.timeout(20):
        while True:
            line = await process.stderr.readline()
            assert line, f"parley exited before it started: {log}"
            if line.startswith(b"{"):
                log.append(json.loads(line))
                if log[-1]["event"] == "parley_started":
                    break
    return Running(process, log, asyncio.create_task(_collect(process, log)))


async def _collect(process: asyncio.subprocess.Process, log: list[dict[str, Any]]) -> None:
    assert process.stderr is not None
    async for line in process.stderr:
        if line.startswith(b"{"):
            log.append(json.loads(line))
