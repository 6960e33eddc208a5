"""A line of `parley doctor`'s checklist: every adapter's `check()` answers with one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One service or setting: ok, failed (with a fix), or skipped (`ok` None)."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""
