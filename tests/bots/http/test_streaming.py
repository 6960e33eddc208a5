"""Streamed turns: SSE on POST /v1/chat, and a WebSocket carrying several turns in order."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import aiohttp

from tests.bots.http.conftest import AUTH, Client, ServeFactory, assert_secure, assert_ws_event
from tests.fakes.upstream import DEFAULT_TEXT, FakeUpstream, Script
from tests.support.engine import eventually

LONG = "Streaming arrives in small pieces, joined by the client into one reply."


def _joined(events: list[tuple[str, Any]]) -> str:
    text = ""
    for event, data in events:
        if event == "delta":
            text = data["text"] if data.get("replace") else text + data["text"]
    return text


async def test_sse_streams_start_deltas_done(client: Client, upstream: FakeUpstream) -> None:
    upstream.script(Script(text=LONG, chunk_chars=3, interval=0.01, prompt_tokens=7))
    events = await client.stream("Stream please.", channel="s")
    names = [event for event, _ in events]
    assert names[0] == "start" and names[-1] == "done"
    assert set(names[1:-1]) == {"delta"} and names.count("delta") >= 2
    assert len(events[0][1]["request_id"]) == 16
    assert _joined(events) == LONG
    done = events[-1][1]
    assert (done["reply"], done["status"], done["note"]) == (LONG, "complete", None)
    assert done["usage"]["prompt_tokens"] == 7


async def test_sse_upstream_failure_after_start_is_an_error_event(
    client: Client, upstream: FakeUpstream
) -> None:
    upstream.script(Script(status=500))
    events = await client.stream("Hello?")
    assert [event for event, _ in events] == ["start", "error"]
    assert events[-1][1]["code"] == "upstream_error"
    assert _joined(events) == ""  # the sentence travels in the error, not as reply text


async def test_sse_refusal_is_a_plain_http_error(client: Client) -> None:
    headers = {**AUTH, "Accept": "text/event-stream"}
    answer = await client.request("POST", "/v1/chat", json={"message": " "}, headers=headers)
    assert (answer.status, answer.body["error"]["code"]) == (400, "invalid_message")


async def test_sse_command_reply(client: Client) -> None:
    events = await client.stream("/help")
    assert [event for event, _ in events] == ["start", "delta", "done"]
    assert events[-1][1]["status"] == "command"
    assert _joined(events) == events[-1][1]["reply"]


async def _turn(ws: aiohttp.ClientWebSocketResponse) -> list[tuple[str, Any]]:
    events = []
    while True:
        event, data = assert_ws_event(await ws.receive_json(timeout=5))
        events.append((event, data))
        if event in ("done", "error"):
            return events


async def test_websocket_two_turns_in_one_connection(
    client: Client, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.script(
        Script(text=LONG, chunk_chars=5, interval=0.01), Script(text="You asked to stream.")
    )
    url = client.served.url + "/v1/chat/ws"
    async with session.ws_connect(url, headers=AUTH) as ws:
        assert_secure(ws._response.headers)
        await ws.send_json({"message": "Stream please.", "channel": "w"})
        await ws.send_json({"message": "What did I ask?", "channel": "w"})
        first, second = await _turn(ws), await _turn(ws)
    assert first[0][0] == "start" and first[-1][0] == "done"
    assert _joined(first) == LONG == first[-1][1]["reply"]
    assert _joined(second) == "You asked to stream." == second[-1][1]["reply"]
    assert first[0][1]["request_id"] != second[0][1]["request_id"]
    history = [m["content"] for m in upstream.requests[1]["body"]["messages"]][1:]
    assert history == ["Stream please.", LONG, "What did I ask?"]


async def test_websocket_bad_message_gets_an_error_and_the_socket_stays(
    client: Client, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(client.served.url + "/v1/chat/ws", headers=AUTH) as ws:
        await ws.send_str("{nope")
        assert [e for e, _ in await _turn(ws)] == ["error"]
        await ws.send_json({"message": ""})
        refused = await _turn(ws)
        assert [e for e, _ in refused] == ["start", "error"]
        assert refused[-1][1]["code"] == "invalid_message"
        await ws.send_json({"message": "Still there?"})
        assert (await _turn(ws))[-1][0] == "done"


async def test_websocket_needs_the_token(client: Client, session: aiohttp.ClientSession) -> None:
    url = client.served.url + "/v1/chat/ws"
    async with session.get(url, headers={"Upgrade": "websocket", "Connection": "Upgrade"}) as r:
        assert r.status == 401
        assert (await r.json())["error"]["code"] == "unauthorized"


async def test_stopping_the_server_closes_open_websockets(
    serve: ServeFactory, session: aiohttp.ClientSession
) -> None:
    served = await serve()
    async with session.ws_connect(served.url + "/v1/chat/ws", headers=AUTH) as ws:
        await served.server.stop()
        message = await ws.receive(timeout=5)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_a_stream_the_model_server_cut_ends_in_error_not_done(
    client: Client, upstream: FakeUpstream
) -> None:
    upstream.script(Script(text="One two three four five", fault="drop_mid", fault_after=2))
    events = await client.stream("Count.")
    assert _joined(events) == "One two "  # deltas are model text only
    end, data = events[-1]
    assert end == "error" and "done" not in [event for event, _ in events]
    assert (data["code"], data["reply"], data["status"]) == (
        "upstream_error",
        "One two ",
        "partial",
    )
    assert data["message"] == "The model's answer was cut off before it finished. Please try again."


async def test_a_cut_stream_ends_in_error_over_the_websocket_too(
    client: Client, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.script(Script(text="One two three four five", fault="drop_mid", fault_after=2))
    async with session.ws_connect(client.served.url + "/v1/chat/ws", headers=AUTH) as ws:
        await ws.send_json({"message": "Count."})
        events = await _turn(ws)
        assert events[-1][0] == "error"
        assert (events[-1][1]["reply"], events[-1][1]["status"]) == ("One two ", "partial")
        await ws.send_json({"message": "Again?"})  # the socket goes on
        assert (await _turn(ws))[-1][0] == "done"


async def test_an_answer_cut_at_the_length_limit_is_done_and_says_so(
    client: Client, upstream: FakeUpstream
) -> None:
    upstream.script(Script(text="A long story that stops", finish_reason="length"))
    events = await client.stream("Tell me a story.")
    end, data = events[-1]
    assert (end, data["status"], data["reply"]) == ("done", "complete", "A long story that stops")
    assert "length limit" in data["note"]


async def test_a_turn_waiting_in_line_says_so_before_its_answer(
    serve: ServeFactory, session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    client = Client(session, await serve(max_concurrent_streams=1))
    line = client.served.engine.line
    await line.enter(line.place(), deadline=math.inf)  # someone else streams
    asked = asyncio.create_task(client.stream("Hello?"))
    await eventually(lambda: line.queued == 1)
    line.leave()
    events = await asked
    names = [event for event, _ in events]
    assert names[:2] == ["start", "waiting"] and names[-1] == "done"
    assert events[1][1] == {
        "reason": "line",
        "ahead": 0,
        "message": "Waiting for my turn: you're next…",
    }
    assert _joined(events) == DEFAULT_TEXT
