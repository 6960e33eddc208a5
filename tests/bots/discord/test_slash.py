"""Slash commands: /chat streams into the deferred reply; settings commands answer ephemerally."""

from __future__ import annotations

import asyncio

from bots.discord import DiscordFrontDoor
from tests.bots.discord.conftest import DoorFactory
from tests.fakes import discord_payloads as p
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_routes import FakeInteraction
from tests.fakes.upstream import FakeUpstream, Script

ANSWER = (
    "Rivers carve valleys over thousands of years. Wind shapes dunes in a season. "
    "Ice grinds mountains slowly, and rain does the rest."
)
EPHEMERAL = 64


def shown(fake: FakeDiscord, interaction: FakeInteraction) -> str:
    return "".join(m.content for m in fake.reply(interaction))


async def finished(fake: FakeDiscord, interaction: FakeInteraction, text: str) -> None:
    await fake.until(lambda: shown(fake, interaction) == text)


async def test_chat_defers_at_once_then_streams_into_the_original(
    door: DiscordFrontDoor, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    speak = asyncio.Event()  # the model says nothing until the test lets it
    upstream.script(Script(text=ANSWER, chunk_chars=4, interval=0.01, hold=speak))
    chat = await discord_fake.slash("chat", {"prompt": "How do landscapes change?"})
    await discord_fake.until(lambda: any(chat.token in c.path for c in discord_fake.calls))
    speak.set()  # the interaction is answered before the model said a word
    await finished(discord_fake, chat, ANSWER)

    calls = [c for c in discord_fake.calls if chat.token in c.path]
    callback, edits = calls[0], calls[1:]
    assert callback.path.endswith("/callback") and callback.body == {"type": 5}
    assert callback.status == 200  # within Discord's 3 s: the fake refuses a later one
    assert all(c.method == "PATCH" and c.path.endswith("/messages/@original") for c in edits)
    [original] = discord_fake.reply(chat)
    assert len(original.history) >= 3  # "" (thinking), then growing text, then the final
    assert original.history[1] != "…"  # the deferral shows "thinking": no placeholder edit
    assert all(ANSWER.startswith(text) for text in original.history)
    prompt = upstream.requests[-1]["body"]["messages"][-1]
    assert prompt == {"role": "user", "content": "How do landscapes change?"}


async def test_a_long_chat_reply_continues_in_followups(
    door: DiscordFrontDoor, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    text = " ".join(f"Sentence number {i} says something worth reading." for i in range(100))
    upstream.script(Script(text=text, chunk_chars=200, interval=0.005))
    chat = await discord_fake.slash("chat", {"prompt": "write a lot"})
    await finished(discord_fake, chat, text)

    messages = discord_fake.reply(chat)
    assert [m.kind for m in messages] == ["original"] + ["followup"] * (len(messages) - 1)
    assert len(messages) >= 3
    assert all(len(m.content) <= 2000 for m in messages)
    assert all(len(h) <= 2000 for m in messages for h in m.history)


async def test_settings_commands_answer_ephemerally_without_the_model(
    make_door: DoorFactory, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    await make_door(models="fake-model,big-model", rate_limit_burst=10)  # commands count
    expected = {
        ("help", None): "memory on|off",
        ("model", "big-model"): "This channel now uses `big-model`.",
        ("model", None): "This channel uses `big-model`.",
        ("system", "Answer like a pirate."): "System prompt set for this channel.",
        ("memory", "off"): "Memory is off",
        ("memory", None): "Memory is off in this channel.",
        ("reset", None): "I forgot this channel's conversation",
    }
    option = {"model": "name", "system": "text", "memory": "state"}
    for (name, value), sentence in expected.items():
        options = {option[name]: value} if value is not None else None
        command = await discord_fake.slash(name, options)

        def answered(command: FakeInteraction = command, sentence: str = sentence) -> bool:
            return sentence in shown(discord_fake, command)

        await discord_fake.until(answered)
        assert command.callback_type == 5 and command.callback_flags == EPHEMERAL
    assert upstream.requests == []


async def test_chat_is_a_question_whatever_its_words_and_options_are_taken_whole(
    make_door: DoorFactory, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    await make_door(rate_limit_burst=10)
    upstream.script(Script(text="Resetting a router: hold the button for ten seconds."))
    chat = await discord_fake.slash("chat", {"prompt": "reset"})  # a question, not /reset
    await finished(discord_fake, chat, "Resetting a router: hold the button for ten seconds.")
    assert upstream.requests[-1]["body"]["messages"][-1]["content"] == "reset"

    setting = await discord_fake.slash("system", {"text": "/help is what you say first."})
    await discord_fake.until(lambda: "System prompt set" in shown(discord_fake, setting))
    upstream.script(Script(text="ok"))
    await finished(discord_fake, await discord_fake.slash("chat", {"prompt": "hi"}), "ok")
    system = upstream.requests[-1]["body"]["messages"][0]
    assert system["content"].startswith("/help is what you say first.")

    only = await discord_fake.slash("chat", {"prompt": f"<@{p.USER_ID}>"})
    await discord_fake.until(lambda: "mention but no question" in shown(discord_fake, only))
    assert len(upstream.requests) == 2


async def test_a_long_command_answer_is_split_and_stays_ephemeral(
    door: DiscordFrontDoor, discord_fake: FakeDiscord
) -> None:
    prompt = "Always answer in rhyme, and keep it kind. " * 70  # about 2,900 characters
    await discord_fake.slash("system", {"text": prompt})
    show = await discord_fake.slash("system")
    await discord_fake.until(lambda: len(discord_fake.reply(show)) == 2)
    original, followup = discord_fake.reply(show)
    assert len(original.content) <= 2000 and len(followup.content) <= 2000
    assert original.flags & EPHEMERAL and followup.flags & EPHEMERAL
    assert prompt.strip()[-40:] in followup.content


async def test_model_autocomplete_offers_the_configured_models(
    make_door: DoorFactory, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    await make_door(models="fake-model,big-model,small-model")
    typing = await discord_fake.slash("model", {"name": "mod"}, focused="name")
    await discord_fake.until(lambda: typing.choices is not None)
    assert typing.callback_type == 8
    assert [c["value"] for c in typing.choices or []] == ["fake-model", "big-model", "small-model"]

    narrowed = await discord_fake.slash("model", {"name": "SMA"}, focused="name")
    await discord_fake.until(lambda: narrowed.choices is not None)
    assert narrowed.choices == [{"name": "small-model", "value": "small-model"}]

    switched = await discord_fake.slash("model", {"name": "small-model"})
    await discord_fake.until(lambda: "now uses `small-model`" in shown(discord_fake, switched))
    chat = await discord_fake.slash("chat", {"prompt": "hi"})
    await finished(discord_fake, chat, "Hello from the fake upstream.")
    assert upstream.requests[-1]["body"]["model"] == "small-model"


async def test_a_reply_outliving_its_token_goes_on_as_channel_messages(
    make_door: DoorFactory, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    # The token "lives" 1.5 s here: parley uses it for 1.4 s (15 minutes less 1 on Discord).
    discord_fake.token_lifetime = 1.5
    await make_door(door_options={"token_lifetime": 1.5})
    upstream.script(Script(text=ANSWER * 2, chunk_chars=6, interval=0.04))
    chat = await discord_fake.slash("chat", {"prompt": "take your time"})
    await discord_fake.until(
        lambda: "".join(m.content for m in discord_fake.bot_messages(p.CHANNEL_ID)) == ANSWER * 2,
        timeout=10,
    )
    messages = discord_fake.bot_messages(p.CHANNEL_ID)
    assert messages[0].kind == "original" and messages[0].content  # the part it showed in time
    assert {m.kind for m in messages[1:]} == {"channel"}
    assert all(c.status < 400 for c in discord_fake.calls)  # never used the expired token
    assert chat.callback_type == 5


async def test_an_upstream_failure_is_a_sentence_in_the_reply(
    door: DiscordFrontDoor, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    upstream.script(Script(status=401))
    chat = await discord_fake.slash("chat", {"prompt": "hello?"})
    await discord_fake.until(lambda: "rejected parley's API key" in shown(discord_fake, chat))
    assert chat.callback_flags == 0  # the error shows where the answer would have

    follow = await discord_fake.slash("chat", {"prompt": "and now?"})  # the client goes on
    await finished(discord_fake, follow, "Hello from the fake upstream.")


async def test_chat_works_in_a_dm(
    door: DiscordFrontDoor, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    chat = await discord_fake.slash("chat", {"prompt": "psst"}, dm=True)
    await finished(discord_fake, chat, "Hello from the fake upstream.")
    assert discord_fake.reply(chat)[0].channel_id == p.DM_CHANNEL_ID


async def test_settings_commands_are_offered_to_channel_managers_and_enforced(
    make_door: DoorFactory, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    await make_door(models="fake-model,big-model")
    registered = {c["name"]: c for c in discord_fake.commands["global"]}
    manage_channels = 1 << 4  # as discord.py sends it
    for name in ("reset", "model", "system", "memory"):
        assert registered[name]["default_member_permissions"] == manage_channels
    assert registered["chat"]["default_member_permissions"] is None

    bob = await discord_fake.slash("system", {"text": "Be evil."}, user_id=p.OTHER_USER_ID)
    await discord_fake.until(lambda: "Only an admin can" in shown(discord_fake, bob))
    channel_messages = [m for m in discord_fake.bot_messages(p.CHANNEL_ID) if m.kind == "channel"]
    assert channel_messages == []  # nothing announced: nothing changed

    alice = await discord_fake.slash("model", {"name": "big-model"})  # alice: a moderator
    await discord_fake.until(lambda: "now uses `big-model`" in shown(discord_fake, alice))
    [told] = [m for m in discord_fake.bot_messages(p.CHANNEL_ID) if m.kind == "channel"]
    assert "now uses `big-model`" in told.content and "(by Alice)" in told.content
    assert not told.flags & EPHEMERAL  # everyone in the channel sees the change

    upstream.script(Script(text="ok"))
    await discord_fake.slash("chat", {"prompt": "hi"}, user_id=p.OTHER_USER_ID)
    await upstream.wait_requests(1)
    body = upstream.requests[0]["body"]
    assert body["model"] == "big-model" and "Be evil." not in str(body["messages"])


async def test_a_member_mentioning_parley_cannot_reset_a_channel(
    door: DiscordFrontDoor, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    await discord_fake.say(f"<@{p.BOT_ID}> reset", author_id=p.OTHER_USER_ID)
    await discord_fake.until(
        lambda: any(
            "Only an admin can" in m.content for m in discord_fake.bot_messages(p.CHANNEL_ID)
        )
    )
    await discord_fake.say(f"<@{p.BOT_ID}> reset")  # alice manages channels
    await discord_fake.until(
        lambda: any("I forgot" in m.content for m in discord_fake.bot_messages(p.CHANNEL_ID))
    )
