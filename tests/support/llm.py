"""ScriptedLLM: the `core.llm.LLM` port from scripts, with no server and no clock.

Each `stream()` call takes the next queued `Script` (the `default` one when none is
queued), records the request, and yields the script's Deltas then one Finish, or raises
its error (an UpstreamError, after `error_after` deltas). A script with a `gate` stops
after `gate_after` deltas until the test sets the gate; `parked` is set while it waits
there, so a test can await the moment the model is being asked:

    gate = asyncio.Event()
    script = llm.script(Script(["Hel", "lo"], gate=gate, gate_after=1))
    turn = asyncio.create_task(engine.handle(...))
    await script.parked.wait()  # the engine is streaming "Hel"; nothing else happens
    ...                         # look at the store, the sink
    gate.set()
    await turn
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.errors import UpstreamError
from core.llm import LLM, Delta, Finish, StreamEvent
from core.model import ChatMessage, Usage


@dataclass(frozen=True, slots=True)
class Request:
    """What one `stream()` call asked for."""

    messages: tuple[ChatMessage, ...]
    model: str
    max_tokens: int

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """(role, content) of each message: short to compare in an assertion."""
        return [(m.role.value, m.content) for m in self.messages]


@dataclass
class Script:
    """One answer: `deltas` in order, then Finish(`reason`, `usage`), or `error`.

    `error` (an UpstreamError instance or class) is raised after `error_after` deltas
    instead of the rest; `gate`, when given, is awaited after `gate_after` deltas (before
    the error or the Finish when `gate_after` is past the last delta).
    """

    deltas: Sequence[str] = ("OK",)
    reason: str = "stop"
    usage: Usage | None = None
    error: UpstreamError | type[UpstreamError] | None = None
    error_after: int = 0
    gate: asyncio.Event | None = None
    gate_after: int = 0
    parked: asyncio.Event = field(default_factory=asyncio.Event)
    """Set while the stream waits at `gate`."""
    done: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the stream has ended, however (Finish, error, cancelled, abandoned)."""

    @property
    def text(self) -> str:
        """The whole text the script would stream."""
        return "".join(self.deltas)


class ScriptedLLM:
    """An in-memory LLM. `requests` holds every call in order; `closed` after close()."""

    def __init__(self, *scripts: Script, default: Script | None = None) -> None:
        self.default = default if default is not None else Script()
        self.requests: list[Request] = []
        self.closed = False
        self._scripts: deque[Script] = deque(scripts)

    def script(self, script: Script) -> Script:
        """Queue `script` for the next call that has none; returns it (for its events)."""
        self._scripts.append(script)
        return script

    def stream(
        self, messages: Sequence[ChatMessage], *, model: str, max_tokens: int
    ) -> AsyncIterator[StreamEvent]:
        self.requests.append(Request(tuple(messages), model, max_tokens))
        script = self._scripts.popleft() if self._scripts else self.default
        return _play(script)

    async def close(self) -> None:
        self.closed = True

    @property
    def last(self) -> Request:
        """The latest request (IndexError when the model was never asked)."""
        return self.requests[-1]


async def _play(script: Script) -> AsyncIterator[StreamEvent]:
    try:
        stop = len(script.deltas) if script.error is None else script.error_after
        for index, text in enumerate(script.deltas[:stop]):
            if script.gate is not None and index == script.gate_after:
                await _hold(script, script.gate)
            await asyncio.sleep(0)  # a chunk arrives: let the engine's other tasks run
            yield Delta(text)
        if script.gate is not None and script.gate_after >= stop:
            await _hold(script, script.gate)
        if script.error is not None:
            raise script.error() if isinstance(script.error, type) else script.error
        yield Finish(script.reason, script.usage)
    finally:
        script.done.set()


async def _hold(script: Script, gate: asyncio.Event) -> None:
    script.parked.set()
    try:
        await gate.wait()
    finally:
        script.parked.clear()


if TYPE_CHECKING:  # mypy proves the fake satisfies the port
    _port: type[LLM] = ScriptedLLM
