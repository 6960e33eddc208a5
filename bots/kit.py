"""What every front door needs and none should write again: its turns' tasks, stopped with a
grace period, and the repair of the messages a crash left unfinished."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog

from core.engine import Engine
from core.transcript import Repair

log = structlog.get_logger(__name__)


class Turns:
    """The tasks of one front door's turns in flight."""

    def __init__(self, platform: str) -> None:
        self._platform = platform
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `work` as a turn of its own (started now, in the order of calls)."""
        task = asyncio.create_task(self._logged(work), name=f"parley-{self._platform}-turn")
        self.track(task)
        return task

    def track(self, task: asyncio.Task[Any]) -> None:
        """Count a task the platform's library started (e.g. discord.py's dispatch)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, grace: float) -> None:
        """Let turns in flight finish for up to `grace` seconds, then cancel the rest."""
        pending = {task for task in self._tasks if not task.done()}
        if pending and grace > 0:
            _, pending = await asyncio.wait(pending, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _logged(self, work: Coroutine[Any, Any, None]) -> None:
        """The engine never raises; anything that does here is a bug worth a log line."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("turn_crashed", platform=self._platform)


async def repair_crashed(
    engine: Engine, platform: str, edit: Callable[[Repair], Awaitable[None]]
) -> None:
    """Tell each message of `platform` a crash cut off that its answer was interrupted
    (`edit` shows `repair.text` at `repair.ref`); one that cannot be edited is given up."""
    for repair in await engine.repairs(platform):
        try:
            await edit(repair)
        except Exception:
            log.warning(
                "repair_failed", platform=platform, message_id=repair.message_id, exc_info=True
            )
        await engine.repaired(repair)


def start_repairs(
    engine: Engine, platform: str, edit: Callable[[Repair], Awaitable[None]]
) -> asyncio.Task[None]:
    """`repair_crashed` in the background (a front door starts it once connected)."""
    return asyncio.create_task(repair_crashed(engine, platform, edit), name=f"{platform}-repairs")
