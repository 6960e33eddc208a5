"""SlackSink and SlackBudgets on their own, with a stub Web API client."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.errors import SlackApiError

from bots.slack.render import ZWJ
from bots.slack.sink import SlackBudgets, SlackSink
from core.errors import PlatformRateLimited
from core.sink import PLACEHOLDER, THINKING


class Answer(dict[str, Any]):
    def __init__(self, status: int, headers: dict[str, str], **body: Any) -> None:
        super().__init__(body)
        self.status_code = status
        self.headers = headers


class StubClient:
    """Records chat calls; `limited` makes the next chat.update answer 429."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.limited: str | None = None

    async def chat_postMessage(self, **params: Any) -> Answer:
        self.calls.append(("post", params))
        return Answer(200, {}, ok=True, ts=f"1.{len(self.calls):06d}")

    async def chat_update(self, **params: Any) -> Answer:
        self.calls.append(("update", params))
        if self.limited is not None:
            answer = Answer(429, {"Retry-After": self.limited}, ok=False, error="ratelimited")
            self.limited = None
            raise SlackApiError("rate limited", answer)  # type: ignore[no-untyped-call]
        return Answer(200, {}, ok=True)


def sink(client: StubClient, thread_ts: str | None = "9.000001") -> SlackSink:
    return SlackSink(client, "C1", thread_ts=thread_ts)  # type: ignore[arg-type]


async def test_post_goes_to_the_thread_as_safe_markdown() -> None:
    client = StubClient()
    ts = await sink(client).post("**Hi** <!here>")
    kind, params = client.calls[0]
    assert (kind, ts) == ("post", "1.000001")
    assert params["thread_ts"] == "9.000001" and params["channel"] == "C1"
    assert params["markdown_text"] == f"**Hi** <{ZWJ}!here>"
    assert params["unfurl_links"] is False and "text" not in params


async def test_a_notice_fills_the_placeholder_if_one_is_waiting() -> None:
    client = StubClient()
    target = sink(client)
    ts = await target.post(PLACEHOLDER, sign=THINKING)
    await target.notice("The model took too long to answer.")
    assert client.calls[-1] == (
        "update",
        {"channel": "C1", "ts": ts, "markdown_text": "The model took too long to answer."},
    )
    await target.notice("A second sentence.")
    assert [kind for kind, _ in client.calls] == ["post", "update", "post"]  # used up


async def test_a_429_becomes_platform_rate_limited_with_retry_after() -> None:
    client = StubClient()
    client.limited = "7"
    with pytest.raises(PlatformRateLimited) as raised:
        await sink(client).edit("1.000001", "text")
    assert raised.value.retry_after == 7.0


def test_budgets_one_per_workspace_one_per_channel_none_when_off() -> None:
    budgets = SlackBudgets(50, max_channels=2)
    assert budgets.edits("T1") == budgets.edits("T1") != budgets.edits("T2")
    assert budgets.edits("T1")[0].calls == 50 and budgets.edits("T1")[0].per == 60.0
    assert SlackBudgets(0).edits("T1") == ()
    first, second = budgets.posts("T1", "C1"), budgets.posts("T1", "C2")
    assert budgets.posts("T1", "C1") == first  # C1 is now the most recently used
    budgets.posts("T1", "C3")  # over the bound: the least recently used channel goes
    assert budgets.posts("T1", "C1") == first and budgets.posts("T1", "C2") != second
