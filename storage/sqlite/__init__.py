"""The SQLite store, parley's embedded default: one file, one parley (a lock on the file).

Its face for the composition root (bots/faces.py, StorePackage): NAME, accepts(),
open_store(), check(), state_file().
"""

from __future__ import annotations

from pathlib import Path

from core.checks import Check
from core.errors import ConfigError
from storage.sqlite.store import SqliteStore, inspect_file
from storage.sqlite.store import unusable as _unusable

__all__ = [
    "NAME",
    "SqliteStore",
    "accepts",
    "check",
    "open_store",
    "path_of",
    "state_file",
    "unusable",
]

NAME = "sqlite"
SCHEME = "sqlite:///"


def accepts(database: str) -> bool:
    """PARLEY_DATABASE names a SQLite file: a path, or `sqlite:///path`."""
    return "://" not in database or database.startswith(SCHEME)


def path_of(database: str) -> Path:
    """The file a PARLEY_DATABASE value names."""
    return Path(database.removeprefix(SCHEME))


def state_file(database: str, suffix: str) -> Path:
    """A small file that belongs with the data, beside the database: `parley.db<suffix>`."""
    path = path_of(database)
    return path.with_name(path.name + suffix)


async def open_store(database: str, *, exclusive: bool) -> SqliteStore:
    """The store, opened (migrated, its file locked when `exclusive`)."""
    store = SqliteStore(path_of(database), exclusive=exclusive)
    await store.open()
    return store


async def check(database: str) -> Check:
    """What `parley doctor` says of the file, without creating or changing anything."""
    try:
        return Check("database", True, inspect_file(path_of(database)))
    except ConfigError as exc:
        return Check(
            "database", False, exc.user_message, "set PARLEY_DATABASE to a file parley may write"
        )


def unusable(database: str, exc: BaseException) -> ConfigError:
    """The one line to stop on when the file opened but cannot serve (exit status 2)."""
    return _unusable(path_of(database), exc)
