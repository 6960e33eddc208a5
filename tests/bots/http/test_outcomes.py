"""TurnResult -> HTTP answer, and the sink's deltas (no network)."""

from __future__ import annotations

from typing import Any

import pytest

from bots.http.errors import ApiError
from bots.http.outcomes import ChatReply, conclude
from bots.http.sink import ApiSink
from core.engine import BUSY_SENTENCE, CRASH_SENTENCE, NOT_SAVED, STOPPING_SENTENCE
from core.engine import Outcome as O
from core.engine import TurnResult as R
from core.errors import StorageError, StreamDropped, UpstreamRateLimited, UpstreamTimeout
from core.model import Usage
from core.reply import INTERRUPTED_NOTE, LENGTH_NOTE
from core.sink import PLACEHOLDER, THINKING

CUT = f"_({StreamDropped.user_message})_"
SLOW = UpstreamRateLimited(12.2).user_message
TIMEOUT = UpstreamTimeout.user_message


@pytest.mark.parametrize(
    ("result", "status", "code", "retry_after"),
    [
        (R(O.REFUSED, notice="Empty."), 400, "invalid_message", None),
        (R(O.RATE_LIMITED, notice="Slow.", retry_after=5.01), 429, "rate_limited", 6),
        (R(O.RATE_LIMITED, notice="Slow.", retry_after=0.2), 429, "rate_limited", 1),
        (R(O.BUSY, notice=BUSY_SENTENCE, retry_after=5.0), 503, "busy", 5),
        (
            R(O.BUSY, notice=STOPPING_SENTENCE, retry_after=60.0, error="stopping"),
            503,
            "shutting_down",
            60,
        ),
        (R(O.FAILED, note=TIMEOUT, error="upstream_timeout"), 504, "upstream_timeout", None),
        (R(O.FAILED, note=SLOW, retry_after=12.2, error="upstream"), 502, "upstream_error", 13),
        (R(O.FAILED, notice=StorageError.user_message, error="storage"), 502, "turn_failed", None),
        (R(O.FAILED, notice=CRASH_SENTENCE, error="internal"), 502, "turn_failed", None),
        (R(O.INTERRUPTED, note=INTERRUPTED_NOTE), 503, "shutting_down", 60),
    ],
)
def test_errors(result: R, status: int, code: str, retry_after: int | None) -> None:
    answer = conclude(result)
    assert isinstance(answer, ApiError)
    assert (answer.status, answer.code, answer.retry_after) == (status, code, retry_after)
    assert answer.message and "_(" not in answer.message


def test_a_failure_not_saved_says_both() -> None:
    answer = conclude(R(O.FAILED, note=f"{SLOW}\n\n{NOT_SAVED}", error="upstream"))
    assert isinstance(answer, ApiError)
    assert answer.message == f"{SLOW}\n\n{NOT_SAVED[2:-2]}"


@pytest.mark.parametrize(
    ("result", "body"),
    [
        (
            R(O.COMPLETE, reply="Hi.", usage=Usage(3, 1)),
            {
                "reply": "Hi.",
                "status": "complete",
                "note": None,
                "usage": {"prompt_tokens": 3, "completion_tokens": 1},
            },
        ),
        (
            R(O.COMPLETE, reply="Long", note=LENGTH_NOTE),
            {"reply": "Long", "status": "complete", "note": LENGTH_NOTE[2:-2], "usage": None},
        ),
        (
            R(O.PARTIAL, reply="One", note=f"{CUT}\n\n{NOT_SAVED}", error="upstream"),
            {
                "reply": "One",
                "status": "partial",
                "note": f"{StreamDropped.user_message}\n\n{NOT_SAVED[2:-2]}",
                "usage": None,
            },
        ),
        (
            R(O.INTERRUPTED, reply="Half", note=INTERRUPTED_NOTE),
            {
                "reply": "Half",
                "status": "interrupted",
                "note": INTERRUPTED_NOTE[2:-2],
                "usage": None,
            },
        ),
        (
            R(O.COMMAND, notice="Commands: …"),
            {"reply": "Commands: …", "status": "command", "note": None, "usage": None},
        ),
        (
            R(O.COMPLETE, reply="Model text _(aside)_"),
            {"reply": "Model text _(aside)_", "status": "complete", "note": None, "usage": None},
        ),
    ],
)
def test_replies(result: R, body: dict[str, Any]) -> None:
    answer = conclude(result)
    assert isinstance(answer, ChatReply)
    assert answer.body() == body


class Events:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def send(self, event: str, data: dict[str, Any]) -> None:
        self.sent.append((event, data))


async def test_sink_sends_suffixes_and_replaces_rewrites() -> None:
    events = Events()
    sink = ApiSink("rid", events)
    assert sink.inline_notes is False
    ref = await sink.post(PLACEHOLDER, sign=THINKING)  # "thinking" sends nothing
    await sink.edit(ref, "Hello")
    await sink.edit(ref, "Hello, world")
    await sink.edit(ref, "Hello, world")  # nothing new: no event
    await sink.edit(ref, "Goodbye")
    await sink.edit(ref, "Goodbye\n\n_(aside)_")  # model text: sent at once, nothing held
    await sink.catch_up("Goodbye\n\n_(aside)_")  # already carried: no event
    assert events.sent == [
        ("start", {"request_id": "rid"}),
        ("delta", {"text": "Hello"}),
        ("delta", {"text": ", world"}),
        ("delta", {"text": "Goodbye", "replace": True}),
        ("delta", {"text": "\n\n_(aside)_"}),
    ]


async def test_sink_without_events_sends_nothing() -> None:
    sink = ApiSink("rid")
    await sink.edit(await sink.post("a"), "ab")
    await sink.notice("note")
    await sink.catch_up("ab")
    assert sink.flush_interval == 0.5
