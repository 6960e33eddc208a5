"""The LLM port: a stream of text deltas ending in a finish event."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from core.model import ChatMessage, Usage


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of the reply's text, in order."""

    text: str


@dataclass(frozen=True, slots=True)
class Finish:
    """The stream ended properly: `reason` is upstream's finish_reason; usage when reported."""

    reason: str
    usage: Usage | None = None


StreamEvent = Delta | Finish


class LLM(Protocol):
    """An OpenAI-compatible chat model.

    `stream` yields Deltas then exactly one Finish, or raises an UpstreamError
    (core.errors) — StreamDropped when the stream ends without a finish_reason.
    """

    def stream(
        self, messages: Sequence[ChatMessage], *, model: str, max_tokens: int
    ) -> AsyncIterator[StreamEvent]: ...

    async def close(self) -> None: ...
