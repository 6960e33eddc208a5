"""Health, readiness, metrics, the OpenAPI document, security headers and CORS."""

from __future__ import annotations

import asyncio
import re
import sqlite3

import aiohttp
from aiohttp import web

from bots.http import HttpServer
from bots.http.middleware import SECURITY_HEADERS
from tests.bots.http.conftest import AUTH, DOC, Client, ServeFactory, assert_secure
from tests.bots.http.openapi_check import KNOWN, keywords, refs, resolve


async def test_healthz(client: Client) -> None:
    answer = await client.request("GET", "/healthz")
    assert (answer.status, answer.body) == (200, {"status": "ok"})


async def test_readyz_ready_with_every_check(
    serve: ServeFactory, session: aiohttp.ClientSession
) -> None:
    served = await serve(readiness={"slack": lambda: True})
    answer = await Client(session, served).request("GET", "/readyz")
    assert answer.status == 200
    checks = {"engine": True, "database": True, "slack": True}
    assert answer.body == {"status": "ready", "checks": checks}


async def test_readyz_names_each_failing_check(
    serve: ServeFactory, session: aiohttp.ClientSession
) -> None:
    async def hangs() -> bool:
        await asyncio.Event().wait()
        return True

    def raises() -> bool:
        raise RuntimeError("boom")

    served = await serve(
        readiness={
            "discord": lambda: False,
            "slow": hangs,
            "broken": raises,
            "slack": lambda: True,
        },
        check_timeout=0.1,
    )
    answer = await Client(session, served).request("GET", "/readyz")
    assert answer.status == 503
    assert answer.body["status"] == "not ready"
    assert sorted(answer.body["failing"]) == ["broken", "discord", "slow"]
    assert answer.body["checks"]["slack"] is answer.body["checks"]["database"] is True


async def test_readyz_fails_when_the_store_is_closed(client: Client) -> None:
    await client.served.store.close()
    answer = await client.request("GET", "/readyz")
    assert (answer.status, answer.body["failing"]) == (503, ["database"])


async def test_readyz_fails_while_the_database_is_locked(
    serve: ServeFactory, session: aiohttp.ClientSession
) -> None:
    served = await serve(check_timeout=0.3)
    client = Client(session, served)
    locker = sqlite3.connect(served.store.path, isolation_level=None, timeout=0)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        answer = await client.request("GET", "/readyz")
        assert (answer.status, answer.body["failing"]) == (503, ["database"])
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert (await client.request("GET", "/readyz")).status == 200


async def test_readyz_fails_while_draining(client: Client) -> None:
    await client.served.engine.drain(0)
    answer = await client.request("GET", "/readyz")
    assert (answer.status, answer.body["failing"]) == (503, ["engine"])
    assert (await client.request("GET", "/healthz")).status == 200
    refused = await client.chat("Hello?")
    assert (refused.status, refused.body["error"]["code"]) == (503, "shutting_down")
    assert refused.headers["Retry-After"] == "60"


def _sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            return float(match.group(2))
    return 0.0


async def test_metrics_are_served_and_count_api_turns(client: Client) -> None:
    before = await client.request("GET", "/metrics")
    assert before.status == 200
    assert before.headers["Content-Type"].startswith("text/plain")
    for name in ("parley_turns_total", "parley_tokens_total", "parley_active_streams"):
        assert f"# TYPE {name.removesuffix('_total')}" in before.body
    turns = _sample(before.body, "parley_turns_total", outcome="complete", platform="api")
    tokens = _sample(before.body, "parley_tokens_total", direction="out")
    assert (await client.chat("Count me.")).status == 200
    after = (await client.request("GET", "/metrics")).body
    assert _sample(after, "parley_turns_total", outcome="complete", platform="api") == turns + 1
    assert _sample(after, "parley_tokens_total", direction="out") > tokens


async def test_openapi_document_is_served_and_looks_like_3_1(client: Client) -> None:
    answer = await client.request("GET", "/openapi.json")
    assert answer.status == 200
    assert answer.body == DOC
    assert DOC["openapi"].startswith("3.1.")
    assert DOC["info"]["title"] and DOC["info"]["version"]
    assert DOC["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    assert {"/v1/chat", "/v1/chat/ws"} <= set(DOC["paths"])
    for path, operations in DOC["paths"].items():
        for method, operation in operations.items():
            assert method in ("get", "post"), path
            assert operation["responses"], (path, method)
            for status, response in operation["responses"].items():
                assert re.fullmatch(r"[1-5]\d\d", status) and response["description"]
    for ref in refs(DOC):
        assert resolve(DOC, {"$ref": ref})  # every $ref points at something
    schemas = set().union(*(keywords(s) for s in DOC["components"]["schemas"].values()))
    assert schemas - KNOWN == set(), "the checker would ignore these keywords"
    chat = DOC["paths"]["/v1/chat"]["post"]
    assert "text/event-stream" in chat["responses"]["200"]["content"]
    assert set(chat["responses"]) >= {"200", "400", "401", "413", "429", "502", "503", "504"}


async def test_security_headers_on_every_response(
    client: Client, session: aiohttp.ClientSession
) -> None:
    url = client.served.url
    cases = [
        ("GET", "/healthz", {}, 200),
        ("GET", "/metrics", {}, 200),
        ("GET", "/nowhere", {}, 404),
        ("DELETE", "/v1/chat", AUTH, 405),
        ("POST", "/v1/chat", {}, 401),
        ("POST", "/v1/chat", {**AUTH, "Content-Type": "application/json"}, 400),
    ]
    for method, path, headers, status in cases:
        answer = await client.request(method, path, headers=headers, data=b"{")
        assert answer.status == status, (method, path)
        if status >= 400:
            assert set(answer.body["error"]) >= {"code", "message"}
    async with session.ws_connect(url + "/v1/chat/ws", headers=AUTH) as ws:
        assert_secure(ws._response.headers)
    assert set(SECURITY_HEADERS) >= {"X-Frame-Options", "Content-Security-Policy"}


async def test_405_names_the_allowed_methods(client: Client) -> None:
    answer = await client.request("PUT", "/healthz")
    assert (answer.status, answer.body["error"]["code"]) == (405, "method_not_allowed")
    assert "GET" in answer.headers["Allow"]


async def test_cors_preflight_for_a_listed_origin(
    serve: ServeFactory, session: aiohttp.ClientSession
) -> None:
    served = await serve(cors_origins="https://app.example, https://other.example")
    client = Client(session, served)
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    answer = await client.request("OPTIONS", "/v1/chat", headers=preflight)
    assert answer.status == 204
    assert answer.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in answer.headers["Access-Control-Allow-Headers"]
    chat = await client.chat("Hi", headers={**AUTH, "Origin": "https://app.example"})
    assert chat.status == 200
    assert chat.headers["Access-Control-Allow-Origin"] == "https://app.example"
    stranger = await client.request(
        "OPTIONS", "/v1/chat", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert stranger.status == 403
    assert "Access-Control-Allow-Origin" not in stranger.headers


async def test_no_cors_unless_configured(client: Client) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    answer = await client.request("OPTIONS", "/v1/chat", headers=preflight)
    assert answer.status == 405
    assert "Access-Control-Allow-Origin" not in answer.headers
    chat = await client.chat("Hi", headers={**AUTH, "Origin": "https://app.example"})
    assert "Access-Control-Allow-Origin" not in chat.headers


async def test_other_front_doors_mount_routes_before_start(
    serve: ServeFactory, session: aiohttp.ClientSession
) -> None:
    served = await serve()
    server = HttpServer(served.engine, served.config.http, readiness={})

    async def events(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    server.app.router.add_post("/slack/events", events)
    await server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/slack/events"
        async with session.post(url, json={}) as response:
            assert (response.status, await response.json()) == (200, {"ok": True})
            assert_secure(response.headers)
    finally:
        await server.stop()
