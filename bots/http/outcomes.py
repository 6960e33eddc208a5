"""From the engine's TurnResult to the API's answer or error.

The engine decides everything (validation, limits, failures) and says what became of the
turn; this only picks the HTTP shape. Statuses: command 200, refused 400, rate limited
429, busy (the line full, or waited in it too long) or stopping 503, upstream timeout 504,
every other failure 502 (code `upstream_error` when the model server failed, `turn_failed`
otherwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bots.http.errors import ApiError
from core.engine import CRASH_SENTENCE, Outcome, TurnResult
from core.model import Usage

DEFAULT_RETRY_AFTER = 60
BUSY_RETRY_AFTER = 5


@dataclass(frozen=True, slots=True)
class ChatReply:
    """A turn that produced an answer (a model reply, or a command's reply)."""

    status: str
    reply: str
    note: str | None
    usage: Usage | None

    def body(self) -> dict[str, Any]:
        """The JSON answer, also the data of the `done` event."""
        usage = None
        if self.usage is not None:
            usage = {
                "prompt_tokens": self.usage.prompt_tokens,
                "completion_tokens": self.usage.completion_tokens,
            }
        return {"reply": self.reply, "usage": usage, "status": self.status, "note": self.note}


def conclude(result: TurnResult) -> ChatReply | ApiError:
    """The answer for a finished turn, or the error to send instead."""
    outcome = result.outcome
    if outcome is Outcome.COMMAND:
        return ChatReply(outcome.value, result.notice, None, None)
    if outcome is Outcome.REFUSED:
        return ApiError(400, "invalid_message", result.notice)
    if outcome is Outcome.RATE_LIMITED:
        wait = seconds(result.retry_after, DEFAULT_RETRY_AFTER)
        return ApiError(429, "rate_limited", result.notice, retry_after=wait)
    if outcome is Outcome.BUSY:
        # Outcome.BUSY covers both; the engine's own constant tells them apart.
        if result.error == "stopping":
            wait = seconds(result.retry_after, DEFAULT_RETRY_AFTER)
            return ApiError(503, "shutting_down", result.notice, retry_after=wait)
        wait = seconds(result.retry_after, BUSY_RETRY_AFTER)
        return ApiError(503, "busy", result.notice, retry_after=wait)
    note = plain(result.note)
    if outcome is Outcome.FAILED:
        return _failure(result, result.notice or note or CRASH_SENTENCE)
    if outcome is Outcome.INTERRUPTED and not result.reply:
        wait = seconds(result.retry_after, DEFAULT_RETRY_AFTER)
        return ApiError(503, "shutting_down", note, retry_after=wait)
    return ChatReply(outcome.value, result.reply, note or None, result.usage)


def stream_end(result: TurnResult) -> tuple[str, dict[str, Any]]:
    """The last event of a streamed turn: ("done", ChatReply) for an answer that finished,
    ("error", StreamError) for one that did not — cut off, failed or refused — so a client
    never mistakes a cut answer for a whole one."""
    answer = conclude(result)
    if isinstance(answer, ChatReply) and answer.status in _FINISHED:
        return "done", answer.body()
    if isinstance(answer, ChatReply):  # partial or interrupted: some text, then a failure
        answer = _cut(result, answer.note or CRASH_SENTENCE)
    status = _STREAM_STATUS.get(result.outcome, result.outcome.value)
    return "error", {**answer.body(), "reply": result.reply, "status": status}


_FINISHED = (Outcome.COMPLETE.value, Outcome.COMMAND.value)
_STREAM_STATUS = {Outcome.RATE_LIMITED: "rate_limited", Outcome.BUSY: "busy"}


def _cut(result: TurnResult, sentence: str) -> ApiError:
    if result.outcome is Outcome.INTERRUPTED:
        return ApiError(503, "shutting_down", sentence, retry_after=DEFAULT_RETRY_AFTER)
    return _failure(result, sentence)


def seconds(retry_after: float | None, default: int) -> int:
    """Whole seconds for a Retry-After header: rounded up (never too early), at least 1."""
    if retry_after is None:
        return default
    return max(1, math.ceil(retry_after))


def plain(note: str) -> str:
    """A note without the chat Markdown: each "_(sentence)_" paragraph becomes "sentence"."""
    paragraphs = note.split("\n\n") if note else []
    return "\n\n".join(
        p[2:-2] if p.startswith("_(") and p.endswith(")_") else p for p in paragraphs
    )


def _failure(result: TurnResult, sentence: str) -> ApiError:
    if result.error == "busy":  # waited in line past PARLEY_QUEUE_TIMEOUT
        return ApiError(503, "busy", sentence, retry_after=BUSY_RETRY_AFTER)
    if result.error == "upstream_timeout":
        return ApiError(504, "upstream_timeout", sentence)
    if result.error == "upstream":
        # The model server's own 429 keeps its Retry-After; the caller sent nothing wrong.
        wait = None if result.retry_after is None else seconds(result.retry_after, 1)
        return ApiError(502, "upstream_error", sentence, retry_after=wait)
    return ApiError(502, "turn_failed", sentence)  # "storage", "internal"
