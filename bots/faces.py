"""The face every adapter package shows the composition root: a settings class, a way to
open the running thing, a doctor check, and the shapes of its secrets for the scrubber.

A package satisfies one of these Protocols with module-level names (mypy checks modules
against Protocols), so adding an adapter is writing its package and one line in
bots/registry.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from core.checks import Check
from core.config import AdapterSettings
from core.engine import Engine
from core.errors import ConfigError
from core.llm import LLM
from core.memory import MemoryStore

StateFile = Callable[[str], Path | None]


class FrontDoor(Protocol):
    """A running front door, as the composition root drives it."""

    @property
    def connected(self) -> bool: ...

    def routes(self) -> list[web.RouteDef]:
        """What it serves on parley's one HTTP server (mounted before it starts)."""

    async def start(self) -> None: ...

    async def stop(self, grace: float = ...) -> None: ...


class _Configured(Protocol):
    """What a front door and a model adapter both show: a name, settings, secret shapes."""

    @property
    def NAME(self) -> str:
        """Its name: the key of its settings in Config.doors, in logs and readiness."""

    @property
    def SETTINGS(self) -> type[AdapterSettings]:
        """Its settings class (its variables, their help and validation sentences)."""

    @property
    def SECRET_SHAPES(self) -> tuple[str, ...]:
        """Regular expressions of its secrets, scrubbed even when not configured here."""


class DoorPackage(_Configured, Protocol):
    """A chat platform (bots/slack, bots/discord)."""

    def configured(self, settings: Any) -> bool:
        """Whether its settings turn it on; ConfigError when they are only half there."""

    def build(self, engine: Engine, settings: Any, state_file: StateFile) -> FrontDoor:
        """The front door, not started yet (`state_file(suffix)`: a small file of its own
        beside the data, or None where the store has no place for one)."""

    async def check(self, settings: Any) -> Check:
        """What `parley doctor` says of it (reaching the platform with the settings)."""


class StorePackage(Protocol):
    """A store of memory (storage/sqlite), for the PARLEY_DATABASE values it accepts."""

    @property
    def NAME(self) -> str: ...

    def accepts(self, database: str) -> bool: ...

    async def open_store(self, database: str, *, exclusive: bool) -> MemoryStore: ...

    async def check(self, database: str) -> Check: ...

    def state_file(self, database: str, suffix: str) -> Path | None: ...

    def unusable(self, database: str, exc: BaseException) -> ConfigError:
        """The sentence to stop on when the store opened but cannot be written or read."""


class ModelPackage(_Configured, Protocol):
    """A kind of model server behind the LLM port (models/openai)."""

    def configured(self, settings: Any) -> bool: ...

    def open(self, settings: Any) -> LLM: ...

    async def check(self, settings: Any, model: str) -> Check: ...
