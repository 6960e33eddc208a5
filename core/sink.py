"""The ReplySink port: how the engine shows text on a platform."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from core.budget import EditBudget

MessageRef = Any
"""Whatever the platform needs to edit a message it posted (opaque to core)."""


class ReplySink(Protocol):
    """Posts and edits one reply's messages on one platform.

    `post`/`edit` may raise core.errors.PlatformRateLimited(retry_after). A message that is
    still streaming may end inside a code fence: sinks that render Markdown close it for
    display with `core.split.render_open` (the streamer leaves room for that).
    `post_budgets`/`edit_budgets` are the shared scopes each call counts against
    (empty when the platform enforces none, e.g. the terminal).
    """

    max_chars: int
    flush_interval: float | None  # None: use the engine's PARLEY_FLUSH_INTERVAL
    inline_notes: bool  # False: the front door shows TurnResult.note itself (HTTP API)
    post_budgets: Sequence[EditBudget]
    edit_budgets: Sequence[EditBudget]

    async def post(self, text: str) -> MessageRef: ...

    async def edit(self, ref: MessageRef, text: str) -> None: ...

    def describe(self, ref: MessageRef) -> str | None:
        """`ref` as a string this front door can act on after a restart (None: can't)."""

    async def notice(self, text: str) -> None:
        """A one-off answer outside the conversation (command replies, refusals).

        Platforms that can show it to the asking user only (ephemeral) do so.
        """
