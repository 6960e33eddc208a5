"""Platform API calls are counted for /metrics."""

from __future__ import annotations

from prometheus_client import REGISTRY

from bots.discord import DiscordFrontDoor
from tests.bots.discord.test_messages import ANSWER, MENTION, shown
from tests.fakes.discord import FakeDiscord
from tests.fakes.upstream import FakeUpstream, Script
from tests.support.engine import eventually


def calls(platform: str, method: str, status: str = "200") -> float:
    labels = {"platform": platform, "method": method, "status": status}
    return REGISTRY.get_sample_value("parley_platform_calls_total", labels) or 0.0


async def test_discord_calls_are_counted(
    door: DiscordFrontDoor, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    before = calls("discord", "POST /channels/{id}/messages")
    upstream.script(Script(text=ANSWER))
    await discord_fake.say(f"{MENTION} tides?")
    await discord_fake.until(lambda: shown(discord_fake) == ANSWER)
    # Counted when the response reaches parley, a moment after the fake has recorded it.
    await eventually(lambda: calls("discord", "POST /channels/{id}/messages") == before + 1)
