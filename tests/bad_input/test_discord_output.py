"""(b, Discord) Whatever the model writes: every message parley sends or edits on Discord
carries allowed_mentions that ping nobody, Discord accepts it, and the messages rejoin to
exactly the model's text."""

from __future__ import annotations

from hypothesis import assume, example, given
from hypothesis import strategies as st

from bots.discord import DiscordFrontDoor
from bots.discord.sink import MAX_CHARS
from core.engine import Outcome
from core.split import is_blank
from tests.bad_input.conftest import Channels, WatchedEngine, examples
from tests.bad_input.known_bugs import tame
from tests.bad_input.pings import check_discord_pings_nobody, discord_writes
from tests.bad_input.rejoin import as_kept, rejoin
from tests.bad_input.strategies import chunks_of, model_text
from tests.fakes import discord_payloads as p
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_routes import Call
from tests.fakes.upstream import FakeUpstream, Script

MENTION = f"<@{p.BOT_ID}>"
Door = tuple[DiscordFrontDoor, WatchedEngine]


async def reply_in_discord(
    discord_door: Door, fake: FakeDiscord, upstream: FakeUpstream, channel_id: int, script: Script
) -> tuple[list[Call], list[str]]:
    """The model answers a mention as `script` says: parley's writes, and its messages."""
    _, engine = discord_door
    upstream.script(script)
    done = len(engine.results)
    await fake.say(f"{MENTION} say it", channel_id=channel_id)
    result = await engine.turns_done(done + 1)
    assert result.outcome is Outcome.COMPLETE, result
    return discord_writes(fake, channel_id), [m.content for m in fake.bot_messages(channel_id)]


@examples(200)
@given(
    raw=model_text(long_over=MAX_CHARS, max_repeats=2),
    cuts=st.lists(st.integers(0, 100_000), max_size=25),
    interval=st.sampled_from([0.0, 0.0, 0.004, 0.02]),  # > 0: frames are edited in as it grows
)
@example(raw="@everyone @here <@123> <@!123> <@&123> <#1> " * 3, cuts=[4], interval=0.02)
@example(raw="```py\nprint('@everyone')\n" + "x = 1\n" * 500, cuts=[90, 2100], interval=0.0)
@example(raw="🇫🇷" * 2500, cuts=[1, 3], interval=0.0)
@example(raw="lone \ud800 half, pair \ud83d\ude00 end \ud83d", cuts=[19], interval=0.02)
async def test_model_output_in_discord_pings_nobody_and_rejoins(
    discord_door: Door,
    discord_fake: FakeDiscord,
    upstream: FakeUpstream,
    channels: Channels,
    raw: str,
    cuts: list[int],
    interval: float,
) -> None:
    text = tame(raw, MAX_CHARS)
    assume(not is_blank(text))  # blank: see test_a_blank_answer_is_not_left_as_a_placeholder
    channel_id = channels.number()
    script = Script(chunks=chunks_of(text, cuts), interval=interval)
    calls, messages = await reply_in_discord(
        discord_door, discord_fake, upstream, channel_id, script
    )
    assert calls, "parley sent nothing"
    for call in calls:
        check_discord_pings_nobody(call)
        if call.status != 200:  # Discord refuses only what the known blank-post bug sends
            assert not str((call.body or {}).get("content", "")).strip(), call
    pieces = rejoin(messages, as_kept(text), closes_last=True)
    assert pieces is not None, f"the messages do not rejoin to the model's text: {messages!r}"


@examples(120)
@given(
    raw=model_text(long_over=MAX_CHARS, max_repeats=2),
    cuts=st.lists(st.integers(0, 100_000), max_size=25),
)
@example(raw="@everyone <@123> <@&123> " * 100, cuts=[10])
async def test_a_chat_command_reply_pings_nobody_and_rejoins(
    discord_door: Door,
    discord_fake: FakeDiscord,
    upstream: FakeUpstream,
    channels: Channels,
    raw: str,
    cuts: list[int],
) -> None:
    """/chat answers through the interaction's webhook: @original, then followups."""
    text = tame(raw, MAX_CHARS)
    assume(not is_blank(text))  # see test_a_blank_answer_is_not_left_as_a_placeholder
    _, engine = discord_door
    upstream.script(Script(chunks=chunks_of(text, cuts)))
    done = len(engine.results)
    chat = await discord_fake.slash("chat", {"prompt": "say it"}, channel_id=channels.number())
    result = await engine.turns_done(done + 1)
    assert result.outcome is Outcome.COMPLETE, result
    writes = [c for c in discord_fake.calls if chat.token in c.path and c.body]
    assert len(writes) >= 2, "a deferral and at least one edit"
    for call in writes:
        assert call.status in (200, 204), f"Discord refused {call.method} {call.path}"
        if not call.path.endswith("/callback"):  # the deferral carries no content
            check_discord_pings_nobody(call)
    messages = [m.content for m in discord_fake.reply(chat)]
    pieces = rejoin(messages, as_kept(text), closes_last=True)
    assert pieces is not None, f"the messages do not rejoin to the model's text: {messages!r}"


async def test_a_reply_that_starts_with_blank_lines_is_shown_at_once(
    discord_door: Door, discord_fake: FakeDiscord, upstream: FakeUpstream, channels: Channels
) -> None:
    door, _ = discord_door
    channel_id = channels.number()
    upstream.script(Script(chunks=["\n\n", "Hello there."], interval=0.1))
    await discord_fake.say(f"{MENTION} hi", channel_id=channel_id)
    await discord_fake.until(lambda: bool(discord_writes(discord_fake, channel_id)))
    first = discord_writes(discord_fake, channel_id)[0]
    await door.stop(grace=0)  # rather than sit through the retries
    assert first.status == 200, f"Discord refused {first.body!r}"
