"""The API's ReplySink: when streaming, sends the reply as text deltas.

With `inline_notes = False` every edit is the model's text alone (the note comes in the
TurnResult), so edits go out as they are. The engine edits with the full current text; a
client wants only what is new. The sink remembers what it sent and sends the suffix; a
rewrite that is not an extension goes out whole with "replace": true. A sign (no answer
yet) is not reply text: a turn waiting in line or for the model server sends a `waiting`
event instead; the "thinking" placeholder sends nothing.
"""

from __future__ import annotations

from typing import Any, Protocol

from core.sink import Sign, SinkDefaults

ONE_MESSAGE = 10_000_000
"""max_chars: an API reply is never split into several messages."""
STREAM_FLUSH = 0.05
"""An HTTP client has no edit budget: send deltas often so the text flows."""
COLLECT_FLUSH = 0.5
"""A JSON answer is built from the TurnResult at the end; frames are not sent anywhere."""


class EventWriter(Protocol):
    """Where stream events go: an SSE response or a WebSocket. Never raises when the
    client has gone (the turn finishes and is remembered anyway)."""

    async def send(self, event: str, data: dict[str, Any]) -> None: ...


class ApiSink(SinkDefaults):
    """One API turn's reply, streamed as `start` and `delta` events to `events` (if any)."""

    max_chars = ONE_MESSAGE
    inline_notes = False

    def __init__(self, request_id: str, events: EventWriter | None = None) -> None:
        self.request_id = request_id
        self.flush_interval: float | None = STREAM_FLUSH if events else COLLECT_FLUSH
        self._events = events
        self._started = False
        self._sent = ""

    async def post(self, text: str, *, sign: Sign | None = None) -> int:
        """The reply's first text (or a sign); there is only ever one message."""
        await self._show(text, sign)
        return 0

    async def edit(self, ref: object, text: str, *, sign: Sign | None = None) -> None:
        """The reply's full text so far: becomes a delta of what is new."""
        await self._show(text, sign)

    async def notice(self, text: str) -> None:
        """A command's answer or a refusal: the answer takes it from TurnResult.notice."""

    async def announce(self, text: str) -> None:
        """The same: an API caller reads it in the answer."""

    async def start(self) -> None:
        """Send `start` once, when the turn first shows something (or ends)."""
        if self._events is not None and not self._started:
            self._started = True
            await self._events.send("start", {"request_id": self.request_id})

    async def catch_up(self, reply: str) -> None:
        """Send whatever of the final `reply` the deltas have not carried (a command's
        reply, which never passes through post/edit)."""
        await self.start()
        await self._delta(reply)

    async def _show(self, text: str, sign: Sign | None) -> None:
        if self._events is None:
            return
        await self.start()
        if sign is None:
            await self._delta(text)
        elif sign.reason != "thinking":
            await self._events.send("waiting", waiting_event(sign))

    async def _delta(self, text: str) -> None:
        if self._events is None or text == self._sent:
            return
        if text.startswith(self._sent):
            data: dict[str, Any] = {"text": text[len(self._sent) :]}
        else:
            data = {"text": text, "replace": True}
        self._sent = text
        await self._events.send("delta", data)


def waiting_event(sign: Sign) -> dict[str, Any]:
    """The data of a `waiting` event: why the reply has no text yet, in plain words."""
    data: dict[str, Any] = {"reason": sign.reason, "message": sign.text.strip("_")}
    if sign.ahead is not None:
        data["ahead"] = sign.ahead
    if sign.retry_in is not None:
        data["retry_in"] = round(sign.retry_in, 1)
    return data
