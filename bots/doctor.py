"""`parley doctor`: check the configuration and reach every configured service.

Prints a checklist with a fix for each failure; exits 0 only when everything passes.
Services that are not configured are listed as skipped, not failed. Every check is the
adapter's own (its package's `check()`), in the registry's order.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO

from bots import registry
from bots.config import Config
from core.checks import Check

TIMEOUT = 20.0


async def run_doctor(config: Config, out: TextIO = sys.stdout) -> int:
    """Run every check, print the checklist, return the exit status."""
    model = registry.MODELS[0]
    checks: list[tuple[str, Callable[[], Awaitable[Check]]]] = [
        ("database", lambda: config.store_package.check(config.database)),
        ("model server", lambda: model.check(config.model, config.engine.model)),
    ]
    for door in registry.DOORS:
        checks.append((door.NAME, _door_check(door.check, config.door(door.NAME))))
    out.write("parley doctor\n")
    out.write(_line(Check("configuration", True, "every PARLEY_* setting is valid")))
    results = []
    for name, check in checks:
        try:
            async with asyncio.timeout(TIMEOUT):
                result = await check()
        except TimeoutError:
            result = Check(name, False, "no answer in time", "check the URL")
        results.append(result)
        out.write(_line(result))
    failed = [r for r in results if r.ok is False]
    out.write(f"\n{len(failed)} problem(s) found.\n" if failed else "\nAll good.\n")
    out.flush()
    return 1 if failed else 0


def _door_check(
    check: Callable[[object], Awaitable[Check]], settings: object
) -> Callable[[], Awaitable[Check]]:
    return lambda: check(settings)


def _line(check: Check) -> str:
    mark = {True: "ok  ", False: "FAIL", None: "skip"}[check.ok]
    text = f"  [{mark}] {check.name}: {check.detail}\n"
    if check.fix:
        text += f"         fix: {check.fix}\n"
    return text
