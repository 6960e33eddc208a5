"""A scriptable OpenAI-compatible server on loopback, for tests and benchmarks.

It speaks the wire format the real servers speak (SSE `data:` chunks, `[DONE]`, OpenAI-style
error bodies) so the real openai SDK can talk to it, and it can misbehave on purpose the ways
real upstreams do (hangs, dropped connections, llama.cpp's empty 200, malformed lines).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal, Self, TypedDict

from aiohttp import web

from tests.fakes.loopback import serve

DEFAULT_TEXT = "Hello from the fake upstream."

Fault = Literal["hang", "hang_mid", "drop_mid", "no_finish", "empty_200", "malformed"]

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass
class Script:
    """How the fake answers one request; `FakeUpstream.script()` queues these in order."""

    text: str = DEFAULT_TEXT
    chunk_chars: int = 4
    chunks: list[str] | None = None  # explicit content chunks; overrides text/chunk_chars
    interval: float = 0.0  # seconds between content chunks
    first_delay: float = 0.0  # seconds before the first content chunk
    hold: asyncio.Event | None = None  # the first content chunk waits until this is set
    ping: bool = False  # `: ping` comment lines between chunks, as llama.cpp sends
    usage: bool = True  # send the usage chunk when the request asks for it
    prompt_tokens: int = 10
    completion_tokens: int | None = None  # None: one token per content chunk
    finish_reason: str = "stop"
    status: int = 200
    code: str | None = None  # error code in the body; default depends on status
    message: str | None = None  # error message in the body
    retry_after: float | str | None = None  # Retry-After header on an error answer
    fault: Fault | None = None
    fault_after: int = 2  # content chunks sent before hang_mid / drop_mid / malformed
    extra_fields: bool = False  # reasoning_content deltas and empty-choices chunks

    def content_chunks(self) -> list[str]:
        if self.chunks is not None:
            return list(self.chunks)
        step = max(1, self.chunk_chars)
        return [self.text[i : i + step] for i in range(0, len(self.text), step)]


class RecordedRequest(TypedDict):
    """One request as the fake saw it; the content times are filled in while it streams."""

    method: str
    path: str
    body: Any  # parsed JSON, or None
    headers: dict[str, str]  # names lowercased
    peer: Any  # the client's (host, port): equal ports mean a reused connection
    received_at: float  # time.monotonic()
    first_content_at: float | None
    last_content_at: float | None


class FakeUpstream:
    """`async with FakeUpstream() as fake:` then point a client at `fake.base_url`."""

    def __init__(
        self,
        *,
        models: tuple[str, ...] = ("fake-model",),
        reject_stream_options: bool = False,
        port: int = 0,
    ) -> None:
        self.models = models
        # Behave like a server that answers 400 to any request carrying `stream_options`.
        self.reject_stream_options = reject_stream_options
        self.requests: list[RecordedRequest] = []
        self._scripts: deque[Script] = deque()
        self.default = Script()  # how it answers when no script is queued
        self._arrived = asyncio.Condition()
        self._handlers: set[asyncio.Task[Any]] = set()
        self.peak_concurrent = 0  # the most chat requests it was answering at one moment
        self._no_handlers = asyncio.Event()
        self._no_handlers.set()
        self._runner: web.AppRunner | None = None
        self._port = port  # 0: any free port; a given one brings a stopped server back there
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    def script(self, *scripts: Script) -> None:
        """Queue behaviour for the next requests, one Script per request."""
        self._scripts.extend(scripts)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._runner, self._port = await serve(app, self._port)

    async def stop(self) -> None:
        """Cancel stalled handlers first, so shutdown never waits for a hang to end."""
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_requests(
        self,
        n: int,
        timeout: float = 5.0,
    ) -> list[RecordedRequest]:
        """Wait until at least `n` requests have arrived; returns them all."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= n)
        return self.requests

    async def wait_idle(
        self,
        timeout: float = 5.0,
    ) -> None:
        """Wait until no chat request is being answered (stalled ones end when clients leave)."""
        async with asyncio.timeout(timeout):
            await self._no_handlers.wait()

    # -- handlers ------------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> RecordedRequest:
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            with contextlib.suppress(ValueError):
                body = json.loads(raw)
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            body=body,
            headers={k.lower(): v for k, v in request.headers.items()},
            peer=request.transport.get_extra_info("peername") if request.transport else None,
            received_at=time.monotonic(),
            first_content_at=None,
            last_content_at=None,
        )
        self.requests.append(record)
        async with self._arrived:
            self._arrived.notify_all()
        return record

    async def _models(self, request: web.Request) -> web.Response:
        await self._record(request)
        data = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
            for m in self.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.peak_concurrent = max(self.peak_concurrent, len(self._handlers))
        self._no_handlers.clear()
        try:
            record = await self._record(request)
            body = record["body"] if isinstance(record["body"], dict) else {}
            if self.reject_stream_options and "stream_options" in body:
                return _error(
                    400,
                    Script(message="Unrecognized request argument supplied: stream_options"),
                )
            script = self._scripts.popleft() if self._scripts else self.default
            if script.status != 200:
                return _error(script.status, script)
            if script.fault == "hang":
                await _forever()
            if not body.get("stream"):
                return self._completion(body, script)
            return await self._stream(request, record, body, script)
        finally:
            self._handlers.discard(task)
            if not self._handlers:
                self._no_handlers.set()

    def _completion(self, body: dict[str, Any], script: Script) -> web.Response:
        chunks = script.content_chunks()
        return web.json_response(
            {
                "id": f"chatcmpl-fake-{next(self._ids)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "fake-model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(chunks)},
                        "logprobs": None,
                        "finish_reason": script.finish_reason,
                    }
                ],
                "usage": _usage(script, len(chunks)),
            }
        )

    async def _stream(
        self, request: web.Request, record: RecordedRequest, body: dict[str, Any], script: Script
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        if script.fault == "empty_200":
            return response  # llama.cpp's over-long prompt: 200, no chunks, no [DONE]
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunk_id = f"chatcmpl-fake-{next(self._ids)}"
        model = body.get("model", "fake-model")

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            chunk: dict[str, Any] = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": choices,
            }
            if include_usage:
                chunk["usage"] = None
            chunk.update(extra)
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

        await send(choice({"role": "assistant"}))
        if script.extra_fields:
            await send([])  # some servers send choice-less chunks mid-stream
            await send(choice({"reasoning_content": "Thinking it over."}))
        if script.first_delay:
            await asyncio.sleep(script.first_delay)
        if script.hold is not None:
            await script.hold.wait()
        chunks = script.content_chunks()
        for i, piece in enumerate(chunks):
            if i == script.fault_after and script.fault in ("hang_mid", "drop_mid", "malformed"):
                await self._misbehave(request, response, script)
                break
            if i and script.interval:
                await asyncio.sleep(script.interval)
            if i and script.ping:
                await response.write(b": ping\n\n")
            delta: dict[str, Any] = {"content": piece}
            if script.extra_fields:
                delta["reasoning_content"] = None
            await send(choice(delta))
            now = time.monotonic()
            record["first_content_at"] = record["first_content_at"] or now
            record["last_content_at"] = now
        if script.fault == "drop_mid":
            return response
        if script.fault != "no_finish":
            await send(choice({}, script.finish_reason))
        if include_usage and script.usage:
            await send([], usage=_usage(script, len(chunks)))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _misbehave(
        self, request: web.Request, response: web.StreamResponse, script: Script
    ) -> None:
        if script.fault == "hang_mid":
            await _forever()
        elif script.fault == "drop_mid":
            assert request.transport is not None
            request.transport.abort()  # no terminating chunk, no [DONE]: the peer sees a cut
        else:
            await response.write(b"data: {not json\n\n")


def _usage(script: Script, chunks: int) -> dict[str, int]:
    completion = chunks if script.completion_tokens is None else script.completion_tokens
    return {
        "prompt_tokens": script.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": script.prompt_tokens + completion,
    }


def _error(status: int, script: Script) -> web.Response:
    kind, default_code = _ERROR_TYPES.get(status, ("server_error", None))
    message = script.message or f"Fake upstream error {status}."
    headers = {}
    if script.retry_after is not None:
        headers["Retry-After"] = str(script.retry_after)
    body = {
        "error": {
            "message": message,
            "type": kind,
            "param": None,
            "code": script.code or default_code,
        }
    }
    return web.json_response(body, status=status, headers=headers)


async def _forever() -> None:
    """Stall until cancelled: by the client going away, or by `FakeUpstream.stop()`."""
    await asyncio.Event().wait()
