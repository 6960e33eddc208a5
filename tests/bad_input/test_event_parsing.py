"""(c) What people type, as the adapters read it: nothing raises, stripping parley's mention
takes nothing else with it, and a mention with nothing after it gets the validation sentence.

The pure functions first (bots/slack/events.py, bots/discord/turns.py), then the same
promises through the fake Slack and the fake Discord, where the real SDKs parse the events.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from bots.discord.turns import raw_mentions, strip_mentions
from bots.slack.events import BotIdentity, incoming, mentioned_users, prompt_text
from core.commands import parse_command
from core.engine import Outcome
from core.validation import EMPTY_SENTENCE, InvalidPrompt, validate_prompt
from tests.bad_input.conftest import Channels, WatchedEngine, examples
from tests.bad_input.pings import (
    check_discord_pings_nobody,
    check_slack_pings_nobody,
    discord_writes,
    slack_writes,
    unneutralised,
)
from tests.bad_input.strategies import any_char, pasted, tricky
from tests.fakes import discord_payloads as p
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_payloads import BOT_ID, BOT_USER_ID, TEAM_ID
from tests.fakes.upstream import FakeUpstream

ME = BotIdentity(team_id=TEAM_ID, user_id=BOT_USER_ID, bot_id=BOT_ID)
AT_ME = f"<@{BOT_USER_ID}>"
DISCORD_ME, DISCORD_ROLE = p.BOT_ID, p.BOT_ROLE_ID
LIMIT = 4000
typed = st.one_of(st.text(any_char, max_size=80), pasted)
"""What a person types, before Slack escapes it."""
names = st.dictionaries(st.text(max_size=12), st.text(any_char, max_size=12), max_size=4)


def slack_escape(typed: str) -> str:
    """How Slack writes typed text into an event: `&`, `<` and `>` as entities."""
    return typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def one_space_off(text: str) -> str:
    """`text` without the one space or tab that went with a mention before it."""
    return text[1:] if text[:1] in (" ", "\t") else text


# -- Slack: pure functions ----------------------------------------------------------------
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(any_char)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
event_fields = st.sampled_from(
    ["type", "user", "text", "ts", "channel", "channel_type", "thread_ts", "subtype", "bot_id"]
)
events = st.dictionaries(event_fields, json_values, max_size=9).map(
    lambda event: {"type": "app_mention", **event} if "type" not in event else event
)


@examples(500)
@given(body=st.dictionaries(st.sampled_from(["event", "team_id", "event_id"]), json_values))
@example(body={"event": {"type": "app_mention", "user": 7, "channel": ["C"], "ts": 1.5}})
def test_slack_payloads_of_any_shape_never_raise(body: dict[str, Any]) -> None:
    incoming(body, ME)


@examples(500)
@given(event=events, team=st.one_of(st.none(), st.text(max_size=5)))
def test_slack_events_of_any_shape_never_raise(event: dict[str, Any], team: str | None) -> None:
    found = incoming({"event": event, "team_id": team, "event_id": "Ev1"}, ME)
    if found is not None:
        assert found.user != BOT_USER_ID  # parley never answers itself
        prompt_text(found.text, ME, {})


@examples(500)
@given(text=st.one_of(st.text(any_char), pasted, st.lists(tricky).map("".join)), known=names)
@example(text="<@|><<@U1|<!here|@here>>><!subteam^>&amp;lt;&", known={})
def test_slack_markup_of_any_kind_never_raises(text: str, known: dict[str, str]) -> None:
    assert isinstance(prompt_text(text, ME, known), str)
    assert BOT_USER_ID not in mentioned_users(text, ME)


@examples(500)
@given(before=typed, after=typed)
@example(before="", after="")
@example(before="a  \t", after="  b")
@example(before="", after="<@U0PARLEY> typed literally &amp; <!here>")
def test_slack_strips_parleys_mention_and_nothing_else(before: str, after: str) -> None:
    text = f"{slack_escape(before)} {AT_ME} {slack_escape(after)}"
    # The mention goes with the spaces and tabs before it and one after it, for one space.
    expected = (before.rstrip(" \t") + " " + after).strip()
    assert prompt_text(text, ME, {}) == expected
    assert prompt_text(f"{AT_ME} {slack_escape(after)}", ME, {}) == after.strip()
    assert prompt_text(f"<{AT_ME[1:-1]}|parley> {slack_escape(after)}", ME, {}) == after.strip()


@pytest.mark.parametrize(
    "text", [AT_ME, f"  {AT_ME}\t", f"{AT_ME} {AT_ME}", f"<@{BOT_USER_ID}|parley>", f"{AT_ME}\n"]
)
def test_a_slack_message_of_only_parleys_mention_is_empty(text: str) -> None:
    with pytest.raises(InvalidPrompt) as refused:
        validate_prompt(prompt_text(text, ME, {}), max_chars=LIMIT)
    assert refused.value.user_message == EMPTY_SENTENCE


# -- Discord: pure functions --------------------------------------------------------------
discord_me = st.sampled_from([f"<@{DISCORD_ME}>", f"<@!{DISCORD_ME}>", f"<@&{DISCORD_ROLE}>"])
no_own_mention = typed.filter(lambda t: not re.search(rf"<@[!&]?({DISCORD_ME}|{DISCORD_ROLE})>", t))


@examples(500)
@given(text=st.one_of(st.text(any_char), pasted), role=st.one_of(st.none(), st.integers(0)))
def test_discord_content_of_any_kind_never_raises(text: str, role: int | None) -> None:
    strip_mentions(text, DISCORD_ME, role)


@examples(500)
@given(before=no_own_mention, mention=discord_me, after=no_own_mention)
@example(before="hi", mention=f"<@{DISCORD_ME}>", after=" there")
@example(before="", mention=f"<@!{DISCORD_ME}>", after="<@123> and <@&456> stay")
def test_discord_strips_parleys_mention_and_nothing_else(
    before: str, mention: str, after: str
) -> None:
    stripped = strip_mentions(f"{before}{mention}{after}", DISCORD_ME, DISCORD_ROLE)
    assert stripped == (before + one_space_off(after)).strip()
    assert strip_mentions(f"{mention} {after}", DISCORD_ME, DISCORD_ROLE) == after.strip()


@pytest.mark.parametrize(
    "content",
    [f"<@{DISCORD_ME}>", f"<@!{DISCORD_ME}>", f"<@&{DISCORD_ROLE}>", f"<@{DISCORD_ME}> \t\n"],
)
def test_a_discord_message_of_only_parleys_mention_is_empty(content: str) -> None:
    with pytest.raises(InvalidPrompt) as refused:
        validate_prompt(strip_mentions(content, DISCORD_ME, DISCORD_ROLE), max_chars=LIMIT)
    assert refused.value.user_message == EMPTY_SENTENCE


@pytest.mark.parametrize("others", ["<@123>", "<@!123> <@&456>", "@everyone <@123>"])
def test_a_discord_message_of_only_mentions_asks_for_a_question(others: str) -> None:
    prompt = strip_mentions(f"<@{DISCORD_ME}> {others}", DISCORD_ME, DISCORD_ROLE)
    with pytest.raises(InvalidPrompt) as refused:
        validate_prompt(prompt, max_chars=LIMIT, mentions=raw_mentions(prompt))
    assert "mention but no question" in refused.value.user_message
    assert validate_prompt(f"{prompt} why?", max_chars=LIMIT, mentions=raw_mentions(prompt))


# -- through the fakes ----------------------------------------------------------------------
def expected_prompt(prompt: str, mentions: tuple[str, ...] = ()) -> str | None:
    """The prompt the upstream should see, or None when the engine refuses it."""
    try:
        return validate_prompt(prompt, max_chars=LIMIT, mentions=mentions)
    except InvalidPrompt:
        return None


@examples(100)
@given(after=typed)
@example(after="")
@example(after="  \u200b ")
@example(after="<@U0BOB> <!here> &amp; `code` *b*")
async def test_whatever_follows_a_slack_mention_reaches_the_engine_intact(
    slack_door: tuple[Any, WatchedEngine],
    slack: FakeSlack,
    upstream: FakeUpstream,
    channels: Channels,
    after: str,
) -> None:
    assume(parse_command(after) is None)  # commands: see test_engine_prompts
    _, engine = slack_door
    channel, before = channels(), len(upstream.requests)
    done = len(engine.results)
    sent = await slack.mention(channel, "U0ALICE", f"{AT_ME} {slack_escape(after)}")
    result = await engine.turns_done(done + 1)
    wanted = expected_prompt(after.strip())
    [shown] = [m.text for m in slack.thread(channel, sent.payload["event"]["ts"])]
    check_slack_pings_nobody(slack_writes(slack, channel))  # a refusal quotes the mention
    if wanted is None:
        assert result.outcome is Outcome.REFUSED
        assert unneutralised(shown) == unneutralised(result.notice)
        assert len(upstream.requests) == before
    else:
        assert result.outcome is Outcome.COMPLETE, result
        assert upstream.requests[-1]["body"]["messages"][-1]["content"] == wanted


@examples(100)
@given(after=no_own_mention)
@example(after="")
@example(after="@everyone <@123> <@&456>")
async def test_whatever_follows_a_discord_mention_reaches_the_engine_intact(
    discord_door: tuple[Any, WatchedEngine],
    discord_fake: FakeDiscord,
    upstream: FakeUpstream,
    channels: Channels,
    after: str,
) -> None:
    assume(parse_command(after) is None)  # commands: see test_engine_prompts
    _, engine = discord_door
    channel_id, before = channels.number(), len(upstream.requests)
    done = len(engine.results)
    await discord_fake.say(f"<@{DISCORD_ME}> {after}", channel_id=channel_id)
    result = await engine.turns_done(done + 1)
    wanted = expected_prompt(after.strip(), raw_mentions(after))
    for call in discord_writes(discord_fake, channel_id):
        check_discord_pings_nobody(call)
    if wanted is None:
        assert result.outcome is Outcome.REFUSED
        shown = "".join(m.content for m in discord_fake.bot_messages(channel_id))
        assert shown == result.notice
        assert len(upstream.requests) == before
    else:
        assert result.outcome is Outcome.COMPLETE, result
        assert upstream.requests[-1]["body"]["messages"][-1]["content"] == wanted


@pytest.mark.parametrize("text", [AT_ME, f" {AT_ME} ", f"{AT_ME} {AT_ME}"])
async def test_a_slack_mention_alone_is_answered_with_the_validation_sentence(
    slack_door: tuple[Any, WatchedEngine],
    slack: FakeSlack,
    upstream: FakeUpstream,
    channels: Channels,
    text: str,
) -> None:
    _, engine = slack_door
    channel = channels()
    sent = await slack.mention(channel, "U0ALICE", text)
    result = await engine.turns_done(1)
    assert result.notice == EMPTY_SENTENCE
    assert [m.text for m in slack.thread(channel, sent.payload["event"]["ts"])] == [EMPTY_SENTENCE]
    assert not upstream.requests


@pytest.mark.parametrize(
    "content", [f"<@{DISCORD_ME}>", f"<@!{DISCORD_ME}>  ", f"<@&{DISCORD_ROLE}>\n"]
)
async def test_a_discord_mention_alone_is_answered_with_the_validation_sentence(
    discord_door: tuple[Any, WatchedEngine],
    discord_fake: FakeDiscord,
    upstream: FakeUpstream,
    channels: Channels,
    content: str,
) -> None:
    _, engine = discord_door
    channel_id = channels.number()
    await discord_fake.say(content, channel_id=channel_id)
    result = await engine.turns_done(1)
    assert result.notice == EMPTY_SENTENCE
    assert [m.content for m in discord_fake.bot_messages(channel_id)] == [EMPTY_SENTENCE]
    assert not upstream.requests
