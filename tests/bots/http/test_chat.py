"""POST /v1/chat as JSON: replies, memory, commands, auth, and every error it maps."""

from __future__ import annotations

import math
import sqlite3
from typing import Any

import aiohttp
import pytest

from tests.bots.http.conftest import AUTH, TOKEN, Client, ServeFactory
from tests.fakes.upstream import FakeUpstream, Script


def _sent_texts(request: Any) -> list[str]:
    return [m["content"] for m in request["body"]["messages"]]


async def test_chat_returns_the_upstream_text_and_usage(
    client: Client, upstream: FakeUpstream
) -> None:
    upstream.script(Script(text="Paris is the capital of France.", prompt_tokens=12))
    answer = await client.chat("What is the capital of France?", channel="geo")
    assert answer.status == 200
    assert answer.body["reply"] == "Paris is the capital of France."
    assert answer.body["status"] == "complete"
    assert answer.body["note"] is None
    chunks = len(Script(text="Paris is the capital of France.").content_chunks())
    assert answer.body["usage"] == {"prompt_tokens": 12, "completion_tokens": chunks}
    assert len(answer.headers["X-Request-Id"]) == 16
    assert _sent_texts(upstream.requests[-1])[-1] == "What is the capital of France?"


async def test_memory_is_per_channel(client: Client, upstream: FakeUpstream) -> None:
    upstream.script(Script(text="Nice to meet you, Ada."), Script(text="Ada."), Script(text="?"))
    assert (await client.chat("My name is Ada.", channel="one")).status == 200
    assert (await client.chat("What is my name?", channel="one")).body["reply"] == "Ada."
    assert _sent_texts(upstream.requests[1])[1:] == [
        "My name is Ada.",
        "Nice to meet you, Ada.",
        "What is my name?",
    ]
    await client.chat("What is my name?", channel="two")
    assert _sent_texts(upstream.requests[2])[1:] == ["What is my name?"]


async def test_commands_answer_without_the_model(client: Client, upstream: FakeUpstream) -> None:
    await client.chat("Remember this.", channel="c")
    answer = await client.chat("/reset", channel="c")
    assert answer.status == 200
    assert answer.body["status"] == "command"
    assert answer.body["reply"].startswith("Done: I forgot this channel's conversation (2")
    assert answer.body["usage"] is None
    assert len(upstream.requests) == 1


async def test_a_cut_stream_is_partial_with_its_note_apart(
    client: Client, upstream: FakeUpstream
) -> None:
    upstream.script(Script(text="One two three four five", fault="drop_mid", fault_after=2))
    answer = await client.chat("Count.")
    assert answer.status == 200
    assert answer.body["status"] == "partial"
    assert answer.body["reply"] == "One two "
    assert (
        answer.body["note"]
        == "The model's answer was cut off before it finished. Please try again."
    )


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-token"}, 401),
        ({"Authorization": f"Basic {TOKEN}"}, 401),
        ({"Authorization": TOKEN}, 401),
        (AUTH, 200),
    ],
)
async def test_bearer_token_is_required(
    client: Client, headers: dict[str, str], status: int
) -> None:
    answer = await client.chat("Hi", headers=headers)
    assert answer.status == status
    if status == 401:
        assert answer.body["error"]["code"] == "unauthorized"
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert TOKEN not in str(answer.body)


async def test_no_chat_routes_without_a_token(
    serve: ServeFactory, session: aiohttp.ClientSession
) -> None:
    client = Client(session, await serve(api_token=None))
    for method, path in (("POST", "/v1/chat"), ("GET", "/v1/chat/ws")):
        answer = await client.request(method, path, headers=AUTH, json={"message": "Hi"})
        assert (answer.status, answer.body["error"]["code"]) == (404, "not_found")
    assert (await client.request("GET", "/healthz")).status == 200


async def test_a_body_over_the_limit_is_413(client: Client, upstream: FakeUpstream) -> None:
    big = {"message": "x" * (client.served.config.http.api_max_body_bytes + 1)}
    answer = await client.request("POST", "/v1/chat", json=big, headers=AUTH)
    assert (answer.status, answer.body["error"]["code"]) == (413, "too_large")
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"message": ""}', "invalid_message"),
        (b'{"message": "   "}', "invalid_message"),
        (b'{"message": "hi\\u0000"}', "invalid_message"),
        (b"{not json", "bad_request"),
        (b"[1, 2]", "bad_request"),
        (b'{"channel": "c"}', "bad_request"),
        (b'{"message": 5}', "bad_request"),
        (b'{"message": "hi", "channel": ""}', "bad_request"),
        (b'{"message": "hi", "channel": 7}', "bad_request"),
        (b'{"message": "hi", "extra": 1}', "bad_request"),
    ],
)
async def test_bad_requests_are_400(
    client: Client, upstream: FakeUpstream, body: bytes, code: str
) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    answer = await client.request("POST", "/v1/chat", data=body, headers=headers)
    assert (answer.status, answer.body["error"]["code"]) == (400, code)
    assert answer.body["error"]["message"]
    assert upstream.requests == []


async def test_rate_limited_is_429_with_retry_after(
    serve: ServeFactory, session: aiohttp.ClientSession
) -> None:
    client = Client(session, await serve(rate_limit_burst=1, rate_limit_per_minute=10))
    assert (await client.chat("One")).status == 200
    answer = await client.chat("Two")
    assert (answer.status, answer.body["error"]["code"]) == (429, "rate_limited")
    assert answer.headers["Retry-After"] == "6"
    assert answer.body["error"]["retry_after"] == 6
    assert "Try again in 6 seconds" in answer.body["error"]["message"]


async def test_upstream_error_is_502(client: Client, upstream: FakeUpstream) -> None:
    upstream.script(Script(status=500))
    answer = await client.chat("Hello?")
    assert (answer.status, answer.body["error"]["code"]) == (502, "upstream_error")
    assert "server error" in answer.body["error"]["message"]


async def test_upstream_hang_is_504(
    serve: ServeFactory, session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    client = Client(session, await serve(first_token_timeout=0.3))
    upstream.script(Script(fault="hang"))
    answer = await client.chat("Hello?")
    assert (answer.status, answer.body["error"]["code"]) == (504, "upstream_timeout")
    assert answer.body["error"]["message"] == "The model took too long to answer. Please try again."


async def test_a_full_line_is_503(serve: ServeFactory, session: aiohttp.ClientSession) -> None:
    client = Client(session, await serve(max_concurrent_streams=1, max_queued=0))
    line = client.served.engine.line
    await line.enter(line.place(), deadline=math.inf)  # the only slot, and no room to wait
    answer = await client.chat("Hello?")
    assert (answer.status, answer.body["error"]["code"]) == (503, "busy")
    assert "waiting line is full" in answer.body["error"]["message"]
    assert answer.headers["Retry-After"] == "60"
    line.leave()


async def test_a_wait_in_line_past_the_queue_timeout_is_503(
    serve: ServeFactory, session: aiohttp.ClientSession
) -> None:
    client = Client(session, await serve(max_concurrent_streams=1, queue_timeout=0.2))
    line = client.served.engine.line
    await line.enter(line.place(), deadline=math.inf)
    answer = await client.chat("Hello?")
    assert (answer.status, answer.body["error"]["code"]) == (503, "busy")
    assert "couldn't get to this" in answer.body["error"]["message"]
    assert answer.headers["Retry-After"] == "5"
    line.leave()


async def test_upstream_rate_limit_is_502_with_its_retry_after(
    serve: ServeFactory, session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    client = Client(session, await serve(queue_timeout=5))  # 7 s would pass it: not waited
    upstream.script(Script(status=429, retry_after=7))
    answer = await client.chat("Hello?")
    assert (answer.status, answer.body["error"]["code"]) == (502, "upstream_error")
    assert answer.headers["Retry-After"] == "7"
    assert answer.body["error"]["retry_after"] == 7


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('{"message": ' + "[" * 10_000 + "]" * 10_000 + "}", "nested too deeply"),
        ('{"channel": "gen\\u202eeral", "message": "hi"}', '"channel" must be'),
        ('{"channel": "\\ud800", "message": "hi"}', '"channel" must be'),
        ('{"user": "bob\\u0000", "message": "hi"}', '"user" must be'),
    ],
    ids=["deep", "bidi-override", "lone-surrogate", "control-in-user"],
)
async def test_hostile_bodies_are_a_400(client: Client, body: str, says: str) -> None:
    answer = await client.request(
        "POST", "/v1/chat", data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert (answer.status, answer.body["error"]["code"]) == (400, "bad_request")
    assert says in answer.body["error"]["message"]


async def test_each_api_user_has_a_rate_bucket_of_their_own_and_is_remembered(
    serve: ServeFactory, session: aiohttp.ClientSession
) -> None:
    client = Client(session, await serve(rate_limit_burst=1, rate_limit_per_minute=1))
    first = await client.chat("one", channel="team", user="alice")
    assert first.status == 200
    again = await client.chat("two", channel="team-2", user="alice")
    assert again.status == 429  # alice spent her burst
    other = await client.chat("three", channel="team-3", user="bob")
    assert other.status == 200  # bob has his own
    with sqlite3.connect(client.served.config.database) as db:
        authors = [row[0] for row in db.execute("SELECT author FROM messages WHERE role = 'user'")]
    assert authors == ["alice", "bob"]
