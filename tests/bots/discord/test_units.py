"""Small pieces without a network: mention stripping, conversation keys, budgets, 429 hook."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest
from multidict import CIMultiDict
from yarl import URL

from bots.discord.budgets import DiscordBudgets, is_global, retry_after, watch_rate_limits
from bots.discord.sink import _after
from bots.discord.turns import conversation_key, strip_mentions
from core.budget import Priority
from core.model import ConversationKey

ME, ROLE = 1_100_000_000_000_000_001, 1_200_000_000_000_000_009


@pytest.mark.parametrize(
    ("content", "prompt"),
    [
        (f"<@{ME}> hello", "hello"),
        (f"<@!{ME}> hello", "hello"),
        (f"hey <@{ME}> how are you", "hey how are you"),
        (f"<@&{ROLE}> via the role", "via the role"),
        (f"<@{ME}>\n```py\nprint(1)\n```", "```py\nprint(1)\n```"),
        ("<@1300000000000000001> is my friend", "<@1300000000000000001> is my friend"),
        (f"<@{ME}>", ""),
    ],
)
def test_strip_mentions_removes_only_parley(content: str, prompt: str) -> None:
    assert strip_mentions(content, ME, ROLE) == prompt


def test_memory_is_per_channel_and_per_dm() -> None:
    assert conversation_key(5, 7) == ConversationKey("discord", "5", "7")
    assert conversation_key(None, 9) == ConversationKey("discord", "dm", "9")


def test_a_continuation_shows_only_what_the_old_message_does_not() -> None:
    assert _after("Hello world", "Hello ") == "world"
    assert _after("Hello world", "") == "Hello world"
    assert _after("Rewritten", "Hello") == "Rewritten"  # never lose text
    assert _after("```py\nx = 1\ny = 2", "```py\nx = 1\n") == "```py\ny = 2"


def test_budgets_are_shared_per_channel_and_bot() -> None:
    budgets = DiscordBudgets(50)
    edits, posts = budgets.for_channel(1)
    again, _ = budgets.for_channel(1)
    assert edits[0] is again[0] and edits[1] is budgets.bot
    assert posts == (budgets.bot,)
    assert budgets.channel(2) is not budgets.channel(1)
    unlimited = DiscordBudgets(0)
    assert unlimited.bot is None and unlimited.for_channel(1)[1] == ()


def test_429_headers() -> None:
    assert retry_after({"Retry-After": "2", "X-RateLimit-Reset-After": "1.25"}) == 1.25
    assert retry_after({"Retry-After": "2"}) == 2.0
    assert retry_after({}) is None
    assert is_global({"X-RateLimit-Global": "true"})
    assert is_global({"X-RateLimit-Scope": "global"})
    assert not is_global({"X-RateLimit-Scope": "user"})


async def test_a_429_seen_by_discord_py_pauses_that_channels_budget() -> None:
    budgets = DiscordBudgets(50)
    channel, other = budgets.channel(111), budgets.channel(222)
    hook: Any = watch_rate_limits(budgets).on_request_end[0]
    response = SimpleNamespace(status=429, headers=CIMultiDict({"X-RateLimit-Reset-After": "0.5"}))
    url = URL("https://discord.com/api/v10/channels/111/messages/5")
    await hook(None, SimpleNamespace(), SimpleNamespace(url=url, response=response))

    started = time.monotonic()
    granted: list[str] = []
    paused = asyncio.create_task(channel.slot(Priority.FINAL))  # asks first...
    paused.add_done_callback(lambda _: granted.append("paused channel"))
    going = asyncio.create_task(other.slot(Priority.FINAL))
    going.add_done_callback(lambda _: granted.append("other channel"))
    async with asyncio.timeout(5):
        await asyncio.gather(paused, going)
    assert granted == ["other channel", "paused channel"]  # ...another channel goes on first
    assert time.monotonic() - started >= 0.49  # this one waits what Discord said
