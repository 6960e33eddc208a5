"""Discord's limits: a 429 delays one reply but loses nothing and blocks no one; the budgets
keep replies inside the real limits so that 429s do not happen at all."""

from __future__ import annotations

import asyncio

from bots.discord import DiscordFrontDoor
from tests.bots.discord.conftest import DoorFactory
from tests.fakes import discord_payloads as p
from tests.fakes.discord import FakeDiscord
from tests.fakes.upstream import FakeUpstream, Script

MENTION = f"<@{p.BOT_ID}>"
SLOW = "The first reply streams slowly, one small piece after another, for a while. " * 2


def shown(fake: FakeDiscord, channel_id: int) -> str:
    return "".join(m.content for m in fake.bot_messages(channel_id))


def reply_to(fake: FakeDiscord, trigger: int) -> str:
    """The text of the reply to `trigger` (short replies: one message)."""
    return "".join(m.content for m in fake.messages.values() if m.reference == trigger)


async def test_a_429_delays_one_reply_loses_nothing_and_blocks_no_one(
    door: DiscordFrontDoor, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    discord_fake.rate_limit_edits(2, retry_after=1.0, channel_id=p.CHANNEL_ID)
    upstream.script(Script(text=SLOW, chunk_chars=5, interval=0.02))
    await discord_fake.say(f"{MENTION} take your time")
    await discord_fake.until(lambda: discord_fake.rate_limited >= 1)

    await discord_fake.say(f"{MENTION} quick one", channel_id=p.OTHER_CHANNEL_ID)
    await discord_fake.until(
        lambda: shown(discord_fake, p.OTHER_CHANNEL_ID) == "Hello from the fake upstream."
    )
    # Answered in full while the rate-limited reply is still waiting out its 429s: not stuck
    # behind them.
    assert shown(discord_fake, p.CHANNEL_ID) != SLOW

    await discord_fake.until(lambda: shown(discord_fake, p.CHANNEL_ID) == SLOW)
    assert discord_fake.rate_limited == 2
    rejected = [c for c in discord_fake.calls if c.status == 429]
    assert all(c.method == "PATCH" for c in rejected)


async def test_a_429_on_a_slash_reply_loses_nothing(
    door: DiscordFrontDoor, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    discord_fake.rate_limit_edits(2, retry_after=0.3, channel_id=p.CHANNEL_ID)
    upstream.script(Script(text=SLOW, chunk_chars=5, interval=0.01))
    chat = await discord_fake.slash("chat", {"prompt": "go"})
    await discord_fake.until(lambda: "".join(m.content for m in discord_fake.reply(chat)) == SLOW)
    assert discord_fake.rate_limited == 2


async def test_replies_in_one_channel_stay_within_5_edits_per_5_seconds(
    door: DiscordFrontDoor, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    discord_fake.enforce_limits()  # Discord's real limits, answered with 429 past them
    texts = [f"Answer {i}: " + "a steady stream of words " * 6 for i in range(3)]
    upstream.script(*[Script(text=t, chunk_chars=4, interval=0.01) for t in texts])
    triggers = [
        await discord_fake.say(f"{MENTION} question {i}", author_id=p.USER_ID + 10 + i)
        for i in range(3)
    ]
    await discord_fake.until(
        lambda: (
            all(reply_to(discord_fake, t) for t in triggers)
            and {reply_to(discord_fake, t) for t in triggers} == set(texts)
        ),
        timeout=15,
    )
    assert discord_fake.rate_limited == 0
    edits = [c.at for c in discord_fake.of("PATCH", rf"/channels/{p.CHANNEL_ID}/messages/\d+")]
    assert all(sum(a <= b < a + 5.0 for b in edits) <= 5 for a in edits)


async def test_many_conversations_stay_within_the_bot_wide_budget(
    make_door: DoorFactory, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    await make_door(discord_requests_per_second=5)
    discord_fake.enforce_limits(bot=5)
    people = [p.USER_ID + 100 + i for i in range(6)]
    channels = [p.DM_CHANNEL_ID + 100 + i for i in range(6)]
    upstream.script(*[Script(text=SLOW, chunk_chars=8, interval=0.01) for _ in people])
    for person, channel in zip(people, channels, strict=True):
        await discord_fake.say("hello", author_id=person, dm=True, channel_id=channel)
    await discord_fake.until(
        lambda: all(shown(discord_fake, c) == SLOW for c in channels), timeout=15
    )
    assert discord_fake.rate_limited == 0
    calls = [c.at for c in discord_fake.calls if c.path.startswith("/channels/")]
    assert all(sum(a <= b < a + 1.0 for b in calls) <= 5 for a in calls)


async def test_eighty_people_asking_for_help_at_once_draw_no_429(
    door: DiscordFrontDoor, discord_fake: FakeDiscord
) -> None:
    discord_fake.enforce_limits()  # 50 requests per second for the whole bot
    channels = [p.CHANNEL_ID + 1000 + n for n in range(80)]
    await asyncio.gather(
        *(
            discord_fake.say(f"{MENTION} help", channel_id=c, author_id=p.USER_ID + 1000 + n)
            for n, c in enumerate(channels)
        )
    )
    await discord_fake.until(
        lambda: all("reset" in shown(discord_fake, c) for c in channels), timeout=15
    )
    assert discord_fake.rate_limited == 0
    posts = [c.at for c in discord_fake.calls if c.path.startswith("/channels/")]
    assert len(posts) >= 80
    assert all(sum(a <= b < a + 1.0 for b in posts) <= 50 for a in posts)


async def test_replies_filling_the_bot_budget_still_get_intermediate_edits(
    make_door: DoorFactory, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    # As many replies as the bot has calls a second: keeping a slot for every final would
    # leave frames none; only the finals that can end within the window are kept.
    await make_door(discord_requests_per_second=20, flush_interval=0.5)
    discord_fake.enforce_limits(bot=20)
    text = "An answer that streams for a good while, one piece after another. " * 18
    upstream.default = Script(text=text, chunk_chars=12, interval=0.08)  # ~8 s
    channels = [p.CHANNEL_ID + 2000 + n for n in range(20)]
    await asyncio.gather(
        *(
            discord_fake.say(f"{MENTION} go", channel_id=c, author_id=p.USER_ID + 50 + n)
            for n, c in enumerate(channels)
        )
    )
    await discord_fake.until(lambda: all(shown(discord_fake, c) == text for c in channels), 30)
    assert discord_fake.rate_limited == 0
    # Frames: the versions of a message between its first text and its final one.
    frames = [
        max(0, len([v for v in m.history if v != "…"]) - 2)
        for c in channels
        for m in discord_fake.bot_messages(c)
    ]
    assert sum(frames) >= 10, frames
