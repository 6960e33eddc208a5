"""Retention: messages older than PARLEY_RETENTION_DAYS go, a few hundred at a time, in the
background — each step one small write in the store's queue, so turns never wait for it."""

from __future__ import annotations

import asyncio
import time

import structlog

from core.errors import StorageError
from core.memory import MemoryStore

log = structlog.get_logger(__name__)

STEP = 500  # messages deleted per write
EVERY = 3600.0  # seconds between passes
DAY = 86_400.0


async def prune_forever(
    store: MemoryStore,
    days: float,
    *,
    every: float = EVERY,
) -> None:
    """Delete what is older than `days` now, then again every `every` seconds (0: keep all)."""
    if days <= 0:
        return
    while True:
        cutoff = time.time() - days * DAY
        deleted = 0
        try:
            while (count := await store.prune(cutoff, limit=STEP)) > 0:
                deleted += count
                await asyncio.sleep(0)  # the turns' writes go between two steps
        except StorageError as exc:
            log.warning("retention_failed", error=type(exc).__name__, detail=exc.detail)
        if deleted:
            log.info("retention_pruned", messages=deleted, days=days)
        await asyncio.sleep(every)
