"""The HTTP Events API: signed requests only, quick acks, retries answered once."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp

from tests.bots.slack.conftest import Doors
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_payloads import BOT_USER_ID, sign, slash_command
from tests.fakes.upstream import FakeUpstream, Script

CHANNEL = "C0GENERAL"
ALICE = "U0ALICE"


async def deliver(
    port: int | None,
    body: dict[str, Any] | str,
    *,
    headers: dict[str, str] | None = None,
    timestamp: int | None = None,
    secret: str | None = None,
) -> tuple[int, str]:
    """POST an event the way Slack does; returns the answer's status and body."""
    raw = (json.dumps(body) if isinstance(body, dict) else body).encode()
    kind = "application/json" if isinstance(body, dict) else "application/x-www-form-urlencoded"
    signed = sign(raw, timestamp=timestamp) if secret is None else sign(raw, secret=secret)
    async with (
        asyncio.timeout(10),  # a failure guard: Slack itself gives up after 3 s
        aiohttp.ClientSession() as session,
        session.post(
            f"http://127.0.0.1:{port}/slack/events",
            data=raw,
            headers={"Content-Type": kind, **signed, **(headers or {})},
        ) as response,
    ):
        return response.status, await response.text()


def mention(slack: FakeSlack, text: str, *, event_id: str | None = None) -> dict[str, Any]:
    event = slack.mention_event(CHANNEL, ALICE, f"<@{BOT_USER_ID}> {text}")
    return slack.event_body(event, event_id=event_id)


async def test_a_signed_event_is_acked_at_once_and_answered(
    slack: FakeSlack, upstream: FakeUpstream, doors: Doors
) -> None:
    door = await doors(mode="http")
    assert door.mode == "http" and door.connected
    speak = asyncio.Event()  # the model says nothing until the test lets it
    upstream.script(Script(text="Hello over HTTP.", hold=speak))
    body = mention(slack, "hello")
    status, _ = await deliver(doors.port(door), body)
    assert status == 200  # the ack does not wait for the model, which has not said a word
    speak.set()
    thread = body["event"]["ts"]
    await slack.wait_for(lambda: slack.text_in(CHANNEL, thread) == "Hello over HTTP.")
    assert upstream.requests[0]["body"]["messages"][-1]["content"] == "hello"
    assert not slack.calls_to("apps.connections.open")


async def test_bad_signatures_and_old_timestamps_are_rejected(
    slack: FakeSlack, upstream: FakeUpstream, doors: Doors
) -> None:
    door = await doors(mode="http")
    forged = await deliver(doors.port(door), mention(slack, "forged"), secret="not-the-secret")
    stale = await deliver(
        doors.port(door), mention(slack, "replayed"), timestamp=int(time.time()) - 600
    )
    assert forged[0] == 401 and stale[0] == 401
    upstream.script(Script(text="Only the real one."))
    body = mention(slack, "real")
    assert (await deliver(doors.port(door), body))[0] == 200
    await slack.wait_for(
        lambda: slack.text_in(CHANNEL, body["event"]["ts"]) == "Only the real one."
    )
    assert len(upstream.requests) == 1


async def test_url_verification_is_answered_with_the_challenge(
    slack: FakeSlack, doors: Doors
) -> None:
    door = await doors(mode="http")
    body = {
        "token": "x",
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
        "type": "url_verification",
    }
    status, text = await deliver(doors.port(door), body)
    assert status == 200 and json.loads(text) == {"challenge": body["challenge"]}


async def test_slack_retries_are_answered_once(
    slack: FakeSlack, upstream: FakeUpstream, doors: Doors
) -> None:
    door = await doors(mode="http")
    upstream.script(Script(text="Just once."), Script(text="Twice?"))
    body = mention(slack, "are you there?", event_id="Ev0RETRIED")
    assert (await deliver(doors.port(door), body))[0] == 200
    for attempt in ("1", "2"):
        retry = {"X-Slack-Retry-Num": attempt, "X-Slack-Retry-Reason": "http_timeout"}
        assert (await deliver(doors.port(door), body, headers=retry))[0] == 200
    sentinel = mention(slack, "next")
    await deliver(doors.port(door), sentinel)
    await slack.wait_for(lambda: slack.text_in(CHANNEL, sentinel["event"]["ts"]) == "Twice?")
    assert slack.text_in(CHANNEL, body["event"]["ts"]) == "Just once."
    assert len(upstream.requests) == 2


async def test_a_slash_command_over_http_is_acked_and_answered_ephemerally(
    slack: FakeSlack, doors: Doors
) -> None:
    door = await doors(mode="http")
    response_url = f"http://127.0.0.1:{slack.port}/response/1"
    form = urlencode(slash_command("help", ALICE, CHANNEL, response_url=response_url))
    answer = slack.hold("chat.postEphemeral")  # Slack takes the answer when the test says
    status, _ = await deliver(doors.port(door), form)
    assert status == 200 and slack.ephemerals == []  # acked without waiting for the answer
    answer.set()
    await slack.wait_for(lambda: len(slack.ephemerals) == 1)
    assert "memory on|off" in slack.ephemerals[0]["markdown_text"]


async def test_socket_mode_serves_no_events_route(doors: Doors) -> None:
    door = await doors(mode="socket")
    assert door.routes() == []  # nothing for parley's HTTP server to mount
    http = await doors(mode="http")
    assert [route.path for route in http.routes()] == ["/slack/events"]


DEEP = '{"type": "event_callback", "event": ' + "[" * 10_000 + "]" * 10_000 + "}"  # < 64 KiB


async def test_deep_json_is_refused_before_anything_parses_it(
    slack: FakeSlack, upstream: FakeUpstream, doors: Doors
) -> None:
    door = await doors(mode="http")
    raw = DEEP.encode()
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{doors.port(door)}/slack/events"
        headers = {"Content-Type": "application/json"}
        async with session.post(url, data=raw, headers=headers) as unsigned:
            assert unsigned.status == 401  # the signature is checked on the raw bytes first
        async with session.post(url, data=raw, headers={**headers, **sign(raw)}) as signed:
            assert signed.status == 400 and "nested too deeply" in await signed.text()
    status, _ = await deliver(doors.port(door), mention(slack, "still here?"))
    assert status == 200
    await slack.wait_for(lambda: bool(slack.messages), what="the next event answered")
