"""Platform API calls are counted for /metrics."""

from __future__ import annotations

from prometheus_client import REGISTRY

from bots.slack import SlackFrontDoor
from tests.fakes.slack import FakeSlack
from tests.fakes.upstream import FakeUpstream
from tests.support.engine import eventually


def calls(platform: str, method: str, status: str = "200") -> float:
    labels = {"platform": platform, "method": method, "status": status}
    return REGISTRY.get_sample_value("parley_platform_calls_total", labels) or 0.0


async def test_slack_calls_are_counted(
    slack: FakeSlack, upstream: FakeUpstream, door: SlackFrontDoor
) -> None:
    before = calls("slack", "chat.postMessage")
    sent = await slack.mention("C0GENERAL", "U0ALICE", "<@U0PARLEY> hello")
    ts = sent.payload["event"]["ts"]
    await slack.wait_for(lambda: slack.text_in("C0GENERAL", ts) == "Hello from the fake upstream.")
    # Counted when the response reaches parley, a moment after the fake has recorded it.
    await eventually(lambda: calls("slack", "chat.postMessage") == before + 1)
