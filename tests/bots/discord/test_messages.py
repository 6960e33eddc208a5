"""Mentions and DMs: a reply to the message, edited as the text streams; memory per channel."""

from __future__ import annotations

from typing import Any

from bots.discord import DiscordFrontDoor
from tests.bots.discord.conftest import DoorFactory, Shutdown
from tests.fakes import discord_payloads as p
from tests.fakes.discord import FakeDiscord
from tests.fakes.upstream import FakeUpstream, Script

ANSWER = (
    "Tides follow the moon. Twice a day the sea climbs the shore and slides back, "
    "a little later each day than the last."
)
MENTION = f"<@{p.BOT_ID}>"


def shown(fake: FakeDiscord, channel_id: int = p.CHANNEL_ID) -> str:
    return "".join(m.content for m in fake.bot_messages(channel_id))


def last_prompt(upstream: FakeUpstream) -> Any:
    return upstream.requests[-1]["body"]["messages"][-1]["content"]


async def test_a_mention_gets_a_streamed_reply_to_its_message(
    door: DiscordFrontDoor, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    upstream.script(Script(text=ANSWER, chunk_chars=4, interval=0.01))
    trigger = await discord_fake.say(f"{MENTION} why are there tides?")
    await discord_fake.until(lambda: shown(discord_fake) == ANSWER)

    [reply] = discord_fake.bot_messages(p.CHANNEL_ID)
    assert reply.reference == trigger
    assert len(reply.history) >= 3  # posted early, then edited as the text grew
    assert all(ANSWER.startswith(text) or text == "…" for text in reply.history)
    assert last_prompt(upstream) == "why are there tides?"  # the mention is not in the prompt
    assert discord_fake.of("POST", r"/channels/\d+/typing") == []  # nothing slow before it


async def test_a_mention_of_parleys_role_counts_too(
    door: DiscordFrontDoor, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    trigger = await discord_fake.say(f"<@&{p.BOT_ROLE_ID}> hello role")
    await discord_fake.until(lambda: shown(discord_fake) == "Hello from the fake upstream.")
    assert discord_fake.bot_messages(p.CHANNEL_ID)[0].reference == trigger
    assert last_prompt(upstream) == "hello role"


async def test_a_dm_is_answered_without_a_mention(
    door: DiscordFrontDoor, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    upstream.script(Script(text=ANSWER, chunk_chars=8, interval=0.01))
    trigger = await discord_fake.say("hi, just us here", dm=True)
    await discord_fake.until(lambda: shown(discord_fake, p.DM_CHANNEL_ID) == ANSWER)
    assert discord_fake.bot_messages(p.DM_CHANNEL_ID)[0].reference == trigger
    assert last_prompt(upstream) == "hi, just us here"


async def test_bots_parley_itself_and_unmentioned_messages_are_ignored(
    door: DiscordFrontDoor, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    await discord_fake.say(f"{MENTION} from another bot", author_id=p.OTHER_BOT_ID)
    await discord_fake.say(f"{MENTION} parley talking to itself", author_id=p.BOT_ID)
    await discord_fake.say("a bot in a DM", author_id=p.OTHER_BOT_ID, dm=True)
    await discord_fake.say("people talking among themselves")
    await discord_fake.say(f"@everyone and <@{p.OTHER_USER_ID}>, lunch?")
    # Events are handled in order: once this one is answered, the others were looked at.
    await discord_fake.say(f"{MENTION} only this one")
    await discord_fake.until(lambda: shown(discord_fake) == "Hello from the fake upstream.")
    assert [r["body"]["messages"][-1]["content"] for r in upstream.requests] == ["only this one"]
    assert shown(discord_fake, p.DM_CHANNEL_ID) == ""


async def test_memory_is_per_channel_and_survives_a_restart(
    make_door: DoorFactory, shutdown: Shutdown, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    first = await make_door()
    await discord_fake.say(f"{MENTION} my favourite colour is green")
    await discord_fake.until(lambda: shown(discord_fake) == "Hello from the fake upstream.")
    await shutdown(first)

    await make_door()  # a new process on the same database file
    await discord_fake.say(f"{MENTION} what is my favourite colour?")
    await discord_fake.until(lambda: len(upstream.requests) == 2)
    remembered = [m["content"] for m in upstream.requests[-1]["body"]["messages"]]
    assert "my favourite colour is green" in remembered
    assert "Hello from the fake upstream." in remembered

    await discord_fake.say(f"{MENTION} and here?", channel_id=p.OTHER_CHANNEL_ID)
    await discord_fake.until(lambda: len(upstream.requests) == 3)
    elsewhere = [m["content"] for m in upstream.requests[-1]["body"]["messages"]]
    assert "my favourite colour is green" not in elsewhere


async def test_a_thread_is_a_conversation_of_its_own(
    door: DiscordFrontDoor, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    await discord_fake.say(f"{MENTION} the channel's secret is 42")
    await discord_fake.until(lambda: shown(discord_fake) == "Hello from the fake upstream.")
    trigger = await discord_fake.say(f"{MENTION} in the thread now", channel_id=p.THREAD_ID)
    await discord_fake.until(
        lambda: shown(discord_fake, p.THREAD_ID) == "Hello from the fake upstream."
    )
    assert discord_fake.bot_messages(p.THREAD_ID)[0].reference == trigger
    contents = [m["content"] for m in upstream.requests[-1]["body"]["messages"]]
    assert "the channel's secret is 42" not in contents


async def test_a_long_reply_continues_in_plain_messages_with_nothing_lost(
    door: DiscordFrontDoor, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    text = "\n\n".join(f"Paragraph {i}: " + "words and more words. " * 12 for i in range(30))
    upstream.script(Script(text=text, chunk_chars=300, interval=0.005))
    trigger = await discord_fake.say(f"{MENTION} tell me everything")
    await discord_fake.until(lambda: shown(discord_fake) == text, timeout=10)

    messages = discord_fake.bot_messages(p.CHANNEL_ID)
    assert len(messages) >= 4
    assert messages[0].reference == trigger
    assert all(m.reference is None for m in messages[1:])  # follow-ons are not replies
    assert all(len(t) <= 2000 for m in messages for t in m.history)


async def test_a_code_block_cut_by_the_limit_renders_in_both_messages(
    door: DiscordFrontDoor, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    code = "\n".join(f"print('line {i}')  # {'x' * 40}" for i in range(80))
    text = f"Here you go:\n\n```python\n{code}\n```\nDone."
    upstream.script(Script(text=text, chunk_chars=400, interval=0.005))
    await discord_fake.say(f"{MENTION} code please")
    await discord_fake.until(lambda: shown(discord_fake).rstrip().endswith("Done."), timeout=10)
    messages = discord_fake.bot_messages(p.CHANNEL_ID)
    assert len(messages) >= 2
    for message in messages:
        assert message.content.count("```") % 2 == 0  # every message closes what it opens
    assert messages[1].content.startswith("```python\n")


async def test_an_upstream_failure_is_a_sentence_in_the_reply(
    door: DiscordFrontDoor, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    upstream.script(Script(status=500))  # a 503 would be waited out, not shown
    trigger = await discord_fake.say(f"{MENTION} are you there?")
    await discord_fake.until(lambda: "model server is having trouble" in shown(discord_fake))
    assert discord_fake.bot_messages(p.CHANNEL_ID)[0].reference == trigger

    await discord_fake.say(f"{MENTION} and now?", channel_id=p.OTHER_CHANNEL_ID)
    await discord_fake.until(
        lambda: shown(discord_fake, p.OTHER_CHANNEL_ID) == "Hello from the fake upstream."
    )


async def test_a_bare_command_word_in_a_mention_is_a_command(
    door: DiscordFrontDoor, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    await discord_fake.say(f"{MENTION} help")
    await discord_fake.until(lambda: "memory on|off" in shown(discord_fake))
    assert upstream.requests == []


async def test_nothing_parley_sends_can_ping_anyone(
    door: DiscordFrontDoor, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    pings = f"@everyone @here <@{p.OTHER_USER_ID}> <@&{p.GUILD_ID}> look! " * 20
    upstream.script(*[Script(text=pings, chunk_chars=50, interval=0.005) for _ in range(3)])
    await discord_fake.say(f"{MENTION} ping everyone")
    await discord_fake.say("ping them in a DM", dm=True)
    chat = await discord_fake.slash("chat", {"prompt": "ping"}, channel_id=p.OTHER_CHANNEL_ID)
    help_ = await discord_fake.slash("help", channel_id=p.OTHER_CHANNEL_ID)
    await discord_fake.until(
        lambda: (
            shown(discord_fake) == pings
            and shown(discord_fake, p.DM_CHANNEL_ID) == pings
            and "".join(m.content for m in discord_fake.reply(chat)) == pings
            and bool(discord_fake.reply(help_))
            and "memory" in discord_fake.reply(help_)[0].content
        )
    )
    sent = [c for c in discord_fake.calls if isinstance(c.body, dict) and "content" in c.body]
    assert len(sent) >= 6
    for call in sent:
        assert call.body["allowed_mentions"]["parse"] == [], call
        assert not call.body["allowed_mentions"].get("users"), call
        assert not call.body["allowed_mentions"].get("roles"), call
        assert not call.body["allowed_mentions"].get("replied_user"), call
