"""An HttpServer on loopback port 0, over a real engine (fake upstream, real SQLite), and a
client that holds every response it sees to the OpenAPI document and the security headers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bots.config import Config
from bots.http import HttpServer
from bots.http.connections import MAX_CONNECTIONS
from bots.http.middleware import SECURITY_HEADERS
from bots.http.openapi import openapi_document
from bots.http.server import ReadinessCheck
from bots.main import close_engine, open_engine
from core.engine import Engine
from storage.sqlite import SqliteStore
from tests.bots.http.openapi_check import errors, event_schema, resolve, response_schema
from tests.fakes.upstream import FakeUpstream
from tests.support.engine import make_settings as core_settings

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DOC = openapi_document()


def make_settings(upstream: FakeUpstream, database: Path, **overrides: Any) -> Config:
    """The core tests' settings, with the HTTP server on a free port and the API on."""
    values: dict[str, Any] = {"http_host": "127.0.0.1", "http_port": 0, "api_token": TOKEN}
    return core_settings(upstream, database, **(values | overrides))


@dataclass
class Served:
    """A started server and what it runs on."""

    server: HttpServer
    engine: Engine
    store: SqliteStore
    url: str
    config: Config


ServeFactory = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve(upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[ServeFactory]:
    """Start servers on port 0 (each on its own database); all stopped after the test.

    Readiness checks are "database" (the store's health) plus any given."""
    started: list[Served] = []

    async def factory(
        *,
        readiness: Mapping[str, ReadinessCheck] | None = None,
        check_timeout: float = 2.0,
        max_connections: int = MAX_CONNECTIONS,
        **overrides: Any,
    ) -> Served:
        settings = make_settings(upstream, tmp_path / f"parley{len(started)}.db", **overrides)
        engine = await open_engine(settings)
        store = engine.store
        checks: dict[str, ReadinessCheck] = {"database": store.healthy, **(readiness or {})}
        server = HttpServer(
            engine,
            settings.http,
            readiness=checks,
            check_timeout=check_timeout,
            max_connections=max_connections,
        )
        await server.start()
        served = Served(server, engine, store, f"http://127.0.0.1:{server.port}", settings)
        started.append(served)
        return served

    yield factory
    for served in started:
        await served.server.stop()
        await close_engine(served.engine)


@dataclass
class Answer:
    """One HTTP response, read whole."""

    status: int
    headers: Mapping[str, str]
    body: Any  # parsed JSON, or text


def assert_secure(headers: Mapping[str, str]) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, f"{name} missing or wrong: {headers.get(name)!r}"


def assert_documented(method: str, path: str, answer: Answer) -> None:
    """The response is JSON as the OpenAPI document says for this path and status; errors
    not listed for a path (404, 405) must still be the Error shape."""
    try:
        schema = response_schema(DOC, method, path, answer.status)
    except KeyError:
        assert answer.status >= 400, f"{method} {path} -> {answer.status} is not documented"
        schema = {"$ref": "#/components/schemas/Error"}
    problems = errors(DOC, answer.body, schema)
    assert not problems, problems


def assert_event(event: str, data: Any) -> None:
    problems = errors(DOC, data, event_schema(DOC, event))
    assert not problems, (event, problems)


class Client:
    """aiohttp's real client against one Served; checks headers and schema on every answer."""

    def __init__(self, session: aiohttp.ClientSession, served: Served) -> None:
        self.session = session
        self.served = served

    async def request(
        self, method: str, path: str, *, documented: bool = True, **kwargs: Any
    ) -> Answer:
        async with self.session.request(method, self.served.url + path, **kwargs) as response:
            text = await response.text()
            body: Any = json.loads(text) if response.content_type == "application/json" else text
            answer = Answer(response.status, response.headers, body)
        assert_secure(answer.headers)
        if documented and response.content_type == "application/json":
            assert_documented(method, path, answer)
        return answer

    async def chat(
        self,
        message: str,
        channel: str | None = None,
        headers: Mapping[str, str] = AUTH,
        user: str | None = None,
    ) -> Answer:
        payload: dict[str, Any] = {"message": message}
        if channel is not None:
            payload["channel"] = channel
        if user is not None:
            payload["user"] = user
        return await self.request("POST", "/v1/chat", json=payload, headers=headers)

    async def stream(self, message: str, channel: str = "default") -> list[tuple[str, Any]]:
        """POST with Accept: text/event-stream; the (event, data) pairs, each checked."""
        headers = {**AUTH, "Accept": "text/event-stream"}
        payload = {"message": message, "channel": channel}
        url = self.served.url + "/v1/chat"
        async with self.session.post(url, json=payload, headers=headers) as response:
            assert response.status == 200, await response.text()
            assert response.content_type == "text/event-stream"
            assert_secure(response.headers)
            events = parse_sse((await response.read()).decode())
        for event, data in events:
            assert_event(event, data)
        return events


def parse_sse(text: str) -> list[tuple[str, Any]]:
    """`event:`/`data:` blocks separated by blank lines, data parsed as JSON."""
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


def assert_ws_event(message: Any) -> tuple[str, Any]:
    problems = errors(DOC, message, resolve(DOC, {"$ref": "#/components/schemas/WsEvent"}))
    assert not problems, problems
    assert_event(message["event"], message["data"])
    return message["event"], message["data"]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def served(serve: ServeFactory) -> Served:
    return await serve()


@pytest.fixture
def client(session: aiohttp.ClientSession, served: Served) -> Client:
    return Client(session, served)
