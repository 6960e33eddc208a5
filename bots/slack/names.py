"""Readable names (and whether they are workspace admins) for Slack user ids, from a
bounded cache that `users.info` fills.

A turn never waits for a name: it takes the names already known, and `warm()` starts the
lookups of the rest in the background (one per id at a time) for the next turn. Failed
lookups are remembered briefly, so a deleted user or a missing scope does not cost a call per
message.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Person:
    """What `users.info` says of a user that parley uses."""

    name: str | None
    admin: bool = False  # a workspace admin or owner


Lookup = Callable[[str], Awaitable[Person | None]]


class UserNames:
    """User id -> Person, with concurrent, deduplicated, time-boxed lookups."""

    def __init__(
        self,
        lookup: Lookup,
        *,
        ttl: float = 3600.0,
        miss_ttl: float = 120.0,
        max_size: int = 10_000,
    ) -> None:
        self._lookup = lookup
        self._ttl = ttl
        self._miss_ttl = miss_ttl
        self._max_size = max_size
        self._clock = time.monotonic
        self._cache: OrderedDict[str, tuple[float, Person | None]] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[None]] = {}

    def known(self, user: str) -> str | None:
        """The cached name of `user`, if fresh."""
        person = self._known(user)
        return person.name if person is not None else None

    async def is_admin(self, user: str, *, timeout: float) -> bool:
        """Whether `user` is a workspace admin or owner (False when Slack will not say)."""
        if not self._fresh(user):
            await asyncio.wait([self._start(user)], timeout=timeout)
        person = self._known(user)
        return person is not None and person.admin

    def _known(self, user: str) -> Person | None:
        entry = self._cache.get(user)
        if entry is None or entry[0] <= self._clock():
            return None
        self._cache.move_to_end(user)
        return entry[1]

    def known_of(self, users: Iterable[str]) -> dict[str, str]:
        """The cached names of those of `users` that have one."""
        return {u: name for u in dict.fromkeys(users) if (name := self.known(u))}

    def warm(self, users: Iterable[str]) -> None:
        """Start looking up those of `users` not cached (or whose entry is stale); returns
        at once."""
        for user in dict.fromkeys(users):
            if not self._fresh(user):
                self._start(user)

    async def close(self) -> None:
        """Cancel lookups still running (shutdown)."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _fresh(self, user: str) -> bool:
        entry = self._cache.get(user)
        return entry is not None and entry[0] > self._clock()

    def _start(self, user: str) -> asyncio.Task[None]:
        task = self._inflight.get(user)
        if task is None:
            task = asyncio.create_task(self._load(user), name=f"slack-users-info-{user}")
            self._inflight[user] = task
            task.add_done_callback(lambda _: self._inflight.pop(user, None))
        return task

    async def _load(self, user: str) -> None:
        try:
            person = await self._lookup(user)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.info("slack_user_lookup_failed", user=user, error=type(exc).__name__)
            person = None
        ttl = self._ttl if person is not None else self._miss_ttl
        self._cache[user] = (self._clock() + ttl, person)
        self._cache.move_to_end(user)
        while len(self._cache) > self._max_size:
            self._cache.popitem(last=False)
