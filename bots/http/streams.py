"""The two ways a streamed API reply travels: Server-Sent Events and a WebSocket.

Both take `(event, data)` and never raise once the client has gone: the turn still
finishes and is remembered, exactly as when a chat user closes the app mid-reply.
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from aiohttp import web

log = structlog.get_logger(__name__)

_GONE = ConnectionError  # aiohttp's ClientConnectionResetError: the client went away


class SseEvents:
    """`text/event-stream` on one HTTP response, opened by the first event.

    Opening late lets a turn refused before it streams (invalid, rate limited, busy)
    answer with a plain HTTP error status instead of a 200 stream holding an error.
    """

    def __init__(self, request: web.Request, request_id: str) -> None:
        self._request = request
        self._request_id = request_id
        self._gone = False
        self.response: web.StreamResponse | None = None

    @property
    def started(self) -> bool:
        """Whether the 200 and its headers are already on the wire."""
        return self.response is not None

    async def send(self, event: str, data: dict[str, Any]) -> None:
        """Write one event: `event: NAME` and one `data:` line of JSON."""
        if self._gone:
            return
        frame = f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()
        try:
            if self.response is None:
                self.response = web.StreamResponse(
                    headers={
                        "Content-Type": "text/event-stream; charset=utf-8",
                        "X-Accel-Buffering": "no",  # proxies: pass each event on at once
                        "X-Request-Id": self._request_id,
                    }
                )
                await self.response.prepare(self._request)
            await self.response.write(frame)
        except _GONE:
            self._gone = True
            log.info("api_client_gone", request_id=self._request_id)

    async def close(self) -> None:
        """End the stream after the last event."""
        if self.response is not None and not self._gone:
            try:
                await self.response.write_eof()
            except _GONE:
                self._gone = True


class WsEvents:
    """Events as JSON text frames {"event": NAME, "data": {...}} on an open WebSocket."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws

    async def send(self, event: str, data: dict[str, Any]) -> None:
        """Send one event, or nothing when the socket is closing."""
        if self._ws.closed:
            return
        try:
            await self._ws.send_json({"event": event, "data": data})
        except _GONE:
            log.info("api_client_gone")
