"""The ReplySink port: how the engine shows text on a platform."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from core.budget import EditBudget

MessageRef = Any
"""Whatever the platform needs to edit a message it posted (opaque to core)."""

PLACEHOLDER = "…"


@dataclass(frozen=True, slots=True)
class Sign:
    """What a reply shows before its first words, and why it has none yet.

    `reason`: "thinking" (the model is asked), "line" (waiting for a free upstream slot;
    `ahead` turns before it) or "model" (the model server said to come back in `retry_in`
    seconds). `text` is the sentence shown in a chat (Markdown)."""

    text: str
    reason: Literal["thinking", "line", "model"] = "thinking"
    ahead: int | None = None
    retry_in: float | None = None


THINKING = Sign(PLACEHOLDER)


def in_line(ahead: int) -> Sign:
    """The sign of a reply waiting for a free upstream slot."""
    if ahead <= 0:
        text = "_Waiting for my turn: you're next…_"
    else:
        people = "person" if ahead == 1 else "people"
        text = f"_Waiting for my turn: {ahead} {people} ahead of you…_"
    return Sign(text, "line", ahead=max(0, ahead))


WRITING = "_I'm writing your answer; it will appear here in a moment._"
"""The aside of a reply that answers in one post (the edit budget is crowded)."""


def model_wait(seconds: float) -> Sign:
    """The sign of a reply waiting because the model server asked parley to come back later."""
    whole = max(1, round(seconds))
    text = f"_Waiting for the model server (it asked me to come back in {whole} s)…_"
    return Sign(text, "model", retry_in=seconds)


class ReplySink(Protocol):
    """Posts and edits one reply's messages on one platform.

    `post`/`edit` may raise core.errors.PlatformRateLimited(retry_after). `sign` is given
    when the text is a Sign's (no answer yet): a front door may show it its own way (the
    HTTP API sends a `waiting` event, not reply text). A message that is
    still streaming may end inside a code fence: sinks that render Markdown close it for
    display with `core.split.render_open` (the streamer leaves room for that).
    `post_budgets`/`edit_budgets` are the shared scopes each call counts against
    (empty when the platform enforces none, e.g. the terminal).

    `aside`, where the platform has one (Slack's ephemeral messages), shows the asker alone a
    sentence that leaves nothing in the conversation and spends no edit budget: when the
    edit budget is crowded, a reply then answers with one post at its end instead of
    streaming, and `aside` says meanwhile that the answer is coming. None elsewhere.
    """

    max_chars: int
    flush_interval: float | None  # None: use the engine's PARLEY_FLUSH_INTERVAL
    inline_notes: bool  # False: the front door shows TurnResult.note itself (HTTP API)
    post_budgets: Sequence[EditBudget]
    edit_budgets: Sequence[EditBudget]

    @property
    def aside(self) -> Callable[[str], Awaitable[None]] | None: ...

    async def post(self, text: str, *, sign: Sign | None = None) -> MessageRef: ...

    async def edit(self, ref: MessageRef, text: str, *, sign: Sign | None = None) -> None: ...

    def describe(self, ref: MessageRef) -> str | None:
        """`ref` as a string this front door can act on after a restart (None: can't)."""

    async def notice(self, text: str) -> None:
        """A one-off answer outside the conversation (command replies, refusals).

        Platforms that can show it to the asking user only (ephemeral) do so.
        """

    async def announce(self, text: str) -> None:
        """A sentence everyone in the conversation sees (a change of the channel's settings),
        even where `notice` would show it to the asker alone."""


class SinkDefaults:
    """What most front doors' sinks share; a sink subclasses it, sets `max_chars` and writes
    `post`, `edit` and `notice` (and whatever else differs on its platform)."""

    flush_interval: float | None = None
    inline_notes: bool = True
    post_budgets: Sequence[EditBudget] = ()
    edit_budgets: Sequence[EditBudget] = ()
    aside: Callable[[str], Awaitable[None]] | None = None

    def describe(self, ref: MessageRef) -> str | None:
        """None: this message cannot be found again after a restart."""
        return None

    async def notice(self, text: str) -> None:
        raise NotImplementedError

    async def announce(self, text: str) -> None:
        """Where a notice is seen by everyone, it is the announcement."""
        await self.notice(text)
