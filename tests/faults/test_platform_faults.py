"""When the platform misbehaves: Slack 429 storms, a rejected Slack token at start, Discord
429s on edits, and Discord's gateway closing and coming back (RESUME, or a fresh IDENTIFY).
A reply still arrives whole, memory keeps it, and the conversation goes on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes import discord_payloads as p
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_payloads import MARKDOWN_LIMIT
from tests.fakes.upstream import FakeUpstream, Script
from tests.faults.conftest import (
    AT_DISCORD,
    SLACK_CHANNEL,
    Chat,
    OpenChat,
    Spawned,
    Stack,
    next_turn_works,
    spawn,
)

SLOW = "A reply that streams for a while, one small piece after another. " * 6


async def answered_whole(chat: Chat, text: str, *, timeout: float = 10.0) -> None:
    """The last message asked got `text` on the platform and in memory, complete."""
    await chat.answered(timeout=timeout)
    assert chat.rows()[-1] == ("assistant", text, "complete")


# -- Slack -------------------------------------------------------------------------------------
async def test_a_429_storm_on_chat_update_still_delivers_every_word(
    open_chat: OpenChat, slack_fake: FakeSlack, upstream: FakeUpstream
) -> None:
    chat = await open_chat("slack")
    upstream.script(Script(text=SLOW, chunk_chars=8, interval=0.01))
    slack_fake.fail("chat.update", times=3, retry_after=1)
    shown = await chat.ask("take your time")
    await answered_whole(chat, SLOW, timeout=15)
    await chat.until(lambda: shown() == SLOW)
    assert slack_fake.rate_limited["chat.update"] == 3
    assert len(slack_fake.thread(SLACK_CHANNEL, None)) == 0  # everything went to the thread
    await next_turn_works(chat, upstream)


async def test_a_429_storm_on_chat_post_message_mid_reply_loses_no_text(
    open_chat: OpenChat, slack_fake: FakeSlack, upstream: FakeUpstream
) -> None:
    """The storm hits the post that continues a long reply in a new message."""
    chat = await open_chat("slack")
    paragraph = "A sentence about streaming, long enough to fill a message quickly. " * 12
    text = "\n\n".join(f"{i}. {paragraph.strip()}" for i in range(30))  # ~24,500 characters
    upstream.script(Script(text=text, chunk_chars=500, interval=0.02))
    shown = await chat.ask("write a lot")
    await slack_fake.wait_for(lambda: len(slack_fake.calls_to("chat.postMessage")) == 1)
    slack_fake.fail("chat.postMessage", times=2, retry_after=1)
    await answered_whole(chat, text, timeout=15)
    await chat.until(lambda: shown() == text)
    assert slack_fake.rate_limited["chat.postMessage"] == 2
    posts = slack_fake.calls_to("chat.postMessage")
    assert [c.status for c in posts[1:3]] == [429, 429]  # the continuation met the storm
    messages = [m for m in slack_fake.messages if m.channel == SLACK_CHANNEL]
    assert len(messages) >= 3
    assert all(m.text.strip() and len(m.text) <= MARKDOWN_LIMIT for m in messages)
    await next_turn_works(chat, upstream)


async def test_a_429_storm_on_chat_post_message_still_delivers_a_command_answer(
    open_chat: OpenChat, slack_fake: FakeSlack
) -> None:
    chat = await open_chat("slack")
    slack_fake.fail("chat.postMessage", times=3, retry_after=1)
    shown = await chat.ask("help")
    await chat.answered(timeout=10)
    assert slack_fake.rate_limited["chat.postMessage"] == 3
    assert "memory on|off" in shown()


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("SLACK_BOT_TOKEN", "parley: Slack rejected SLACK_BOT_TOKEN (invalid_auth)"),
        ("SLACK_APP_TOKEN", "parley: Slack rejected SLACK_APP_TOKEN (invalid_auth)"),
    ],
    ids=["bot-token", "app-token"],
)
async def test_parley_run_with_a_rejected_slack_token_exits_2_with_one_line(
    slack_fake: FakeSlack,
    upstream: FakeUpstream,
    tmp_path: Path,
    processes: list[Spawned],
    bad: str,
    says: str,
) -> None:
    env = {
        "OPENAI_BASE_URL": upstream.base_url,
        "PARLEY_DATABASE": str(tmp_path / "parley.db"),
        "PARLEY_HTTP_PORT": "0",
        "SLACK_API_URL": slack_fake.api_url,
        "SLACK_BOT_TOKEN": slack_fake.bot_token,
        "SLACK_APP_TOKEN": slack_fake.app_token,
        bad: "xoxb-revoked-0000" if bad == "SLACK_BOT_TOKEN" else "xapp-1-revoked-0000",
    }
    parley = await spawn("run", env, tmp_path)
    processes.append(parley)
    assert await parley.wait() == 2
    said = [line for line in parley.stderr if not line.startswith("{")]
    assert len(said) == 1, parley.stderr
    assert said[0].startswith(says) and said[0].endswith("\n") and said[0].count("\n") == 1
    assert "Traceback" not in parley.text()
    assert parley.stdout == []
    assert slack_fake.connections == 0


# -- Discord -----------------------------------------------------------------------------------
async def test_429s_on_discord_edits_lose_no_text_and_the_channel_goes_on(
    open_chat: OpenChat, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    chat = await open_chat("discord")
    discord_fake.rate_limit_edits(3, retry_after=0.3, channel_id=p.CHANNEL_ID)
    upstream.script(Script(text=SLOW, chunk_chars=5, interval=0.01))
    shown = await chat.ask("take your time")
    await answered_whole(chat, SLOW, timeout=15)
    await chat.until(lambda: shown() == SLOW)
    assert discord_fake.rate_limited == 3
    await next_turn_works(chat, upstream)


def reply_to(fake: FakeDiscord, trigger: int) -> str:
    return "".join(m.content for m in fake.messages.values() if m.reference == trigger)


@pytest.mark.parametrize("code", [4000, 1000], ids=["close-4000", "plain-close"])
async def test_a_gateway_drop_mid_reply_resumes_and_replays_what_it_missed(
    stack: Stack, discord_fake: FakeDiscord, upstream: FakeUpstream, code: int
) -> None:
    door = await stack.discord_door(await stack.engine())
    upstream.script(
        Script(text=SLOW, chunk_chars=6, interval=0.01),
        Script(text="Heard you while I was away."),
        Script(text="Still here."),
    )
    first = await discord_fake.say(f"{AT_DISCORD} tell me slowly")
    await discord_fake.until(lambda: reply_to(discord_fake, first) != "")  # streaming now

    discord_fake.hold_resumes()
    assert await discord_fake.drop_gateway(code) == 1
    await discord_fake.until(lambda: len(discord_fake.resumes) == 1)  # RESUME sent, held
    missed = await discord_fake.say(f"{AT_DISCORD} are you back?", channel_id=p.OTHER_CHANNEL_ID)
    discord_fake.release_resumes()

    await discord_fake.until(
        lambda: reply_to(discord_fake, missed) == "Heard you while I was away."
    )
    await discord_fake.until(lambda: reply_to(discord_fake, first) == SLOW)  # REST went on
    resume = discord_fake.resumes[0]
    assert resume["session_id"] == "fake-session-1" and resume["token"] == discord_fake.token
    assert resume["seq"] >= 2  # READY and GUILD_CREATE were seen before the drop
    assert len(discord_fake.identifies) == 1  # resumed, not identified again
    await discord_fake.wait_connected()
    assert door.connected

    again = await discord_fake.say(f"{AT_DISCORD} still there?")
    await discord_fake.until(lambda: reply_to(discord_fake, again) == "Still here.")
    sent = [(m["role"], m["content"]) for m in upstream.requests[-1]["body"]["messages"]]
    assert sent[-3:] == [
        ("user", "tell me slowly"),
        ("assistant", SLOW),
        ("user", "still there?"),
    ]


async def test_a_session_discord_will_not_resume_identifies_afresh(
    stack: Stack, discord_fake: FakeDiscord, upstream: FakeUpstream
) -> None:
    door = await stack.discord_door(await stack.engine())
    discord_fake.invalidate_resumes = True  # RESUME answered with INVALID_SESSION (d=false)
    await discord_fake.drop_gateway(4000)
    # discord.py waits 5 s before identifying again (its before_identify_hook), as Discord asks.
    await discord_fake.until(
        lambda: len(discord_fake.identifies) == 2 and discord_fake.connections == 1, timeout=10
    )
    await discord_fake.wait_connected()
    assert len(discord_fake.resumes) == 1

    upstream.script(Script(text="Back with a new session."))
    trigger = await discord_fake.say(f"{AT_DISCORD} hello again")
    await discord_fake.until(lambda: reply_to(discord_fake, trigger) == "Back with a new session.")
    assert door.connected
