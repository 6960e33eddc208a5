"""Every setting of one parley: the engine's, the store's choice, the model server's, the
HTTP server's and each registered front door's, each read by its own class.

`load_config()` reads them all once at start (a bad value: one line, exit 2). Tests build
one with keyword overrides by field name, whichever class the field belongs to.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from bots import registry
from bots.faces import StorePackage
from bots.http.settings import HttpSettings
from core.config import AdapterSettings, EngineSettings, load
from core.errors import ConfigError
from core.logs import SecretRedactor


class StoreChoice(AdapterSettings):
    """PARLEY_DATABASE: a path or sqlite:///path (SQLite); the form picks the store."""

    title: ClassVar[str] = "memory"

    database: str = Field(
        "./parley.db",
        alias="PARLEY_DATABASE",
        min_length=1,
        description="where conversations are kept (a SQLite file path)",
    )


@dataclass(frozen=True)
class Config:
    """One parley's settings, by owner."""

    engine: EngineSettings
    store: StoreChoice
    model: AdapterSettings
    http: HttpSettings
    doors: dict[str, AdapterSettings] = field(default_factory=dict)

    @property
    def database(self) -> str:
        return self.store.database

    def door(self, name: str) -> Any:
        """The settings of the front door called `name` (its own class)."""
        return self.doors[name]

    def parts(self) -> Iterator[AdapterSettings]:
        yield from (self.engine, self.store, self.model, self.http, *self.doors.values())

    def secrets(self) -> list[str]:
        """Every secret value set anywhere, for the scrubber."""
        return [secret for part in self.parts() for secret in part.secrets()]

    def redactor(self) -> SecretRedactor:
        """The scrubber for this configuration: its values, and every adapter's shapes."""
        return SecretRedactor(self.secrets(), shapes=secret_shapes())

    @property
    def store_package(self) -> StorePackage:
        return store_for(self.database)

    def state_file(self, suffix: str) -> Path | None:
        """A small file beside the data (`parley.db<suffix>`), where the store has a place."""
        return self.store_package.state_file(self.database, suffix)

    @property
    def log_path(self) -> Path:
        """Where the terminal chat writes its logs: PARLEY_LOG_FILE, else beside the data."""
        if self.engine.log_file:
            return Path(self.engine.log_file)
        beside = self.state_file(".log")
        return beside.with_name("parley.log") if beside is not None else Path("parley.log")


def store_for(database: str) -> StorePackage:
    """The store whose PARLEY_DATABASE form this is."""
    for package in registry.STORES:
        if package.accepts(database):
            return package
    raise ConfigError(
        f"parley: PARLEY_DATABASE={database!r} names no store parley has: use a file path"
        " (SQLite), e.g. ./parley.db."
    )


def setting_classes() -> list[type[AdapterSettings]]:
    """Every settings class, in the order `--help` lists them."""
    return [
        EngineSettings,
        StoreChoice,
        *(m.SETTINGS for m in registry.MODELS),
        HttpSettings,
        *(d.SETTINGS for d in registry.DOORS),
    ]


def secret_shapes() -> tuple[str, ...]:
    """The shapes of every adapter's secrets, for the scrubber."""
    shapes = [shape for model in registry.MODELS for shape in model.SECRET_SHAPES]
    return (*shapes, *(shape for door in registry.DOORS for shape in door.SECRET_SHAPES))


def load_config(**overrides: Any) -> Config:
    """Read every class (each from the environment and .env); `overrides` by field name go
    to the class that has the field. Raises ConfigError with one line."""
    shared = {k: overrides.pop(k) for k in ("_env_file",) if k in overrides}
    unknown = set(overrides) - {n for c in setting_classes() for n in c.model_fields}
    if unknown:
        raise TypeError(f"no setting called {sorted(unknown)[0]!r}")

    def read(cls: type[AdapterSettings]) -> Any:
        mine = {k: v for k, v in overrides.items() if k in cls.model_fields}
        return load(cls, **shared, **mine)

    store = read(StoreChoice)
    store_for(store.database)  # a form no store takes stops here, with its sentence
    return Config(
        engine=read(EngineSettings),
        store=store,
        model=read(registry.MODELS[0].SETTINGS),
        http=read(HttpSettings),
        doors={d.NAME: read(d.SETTINGS) for d in registry.DOORS},
    )
