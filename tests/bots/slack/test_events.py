"""Which Slack events parley answers, where, with what prompt; and the dedup cache."""

from __future__ import annotations

from typing import Any

import pytest

from bots.slack.events import BotIdentity, SeenCache, incoming, mentioned_users, prompt_text

ME = BotIdentity(team_id="T1", user_id="UBOT", bot_id="BBOT")


def body(**event: Any) -> dict[str, Any]:
    return {"team_id": "T1", "event_id": "Ev1", "event": {"ts": "1.000100", **event}}


def test_a_channel_mention_is_answered_in_its_thread() -> None:
    top = incoming(body(type="app_mention", user="U1", channel="C1", text="<@UBOT> hi"), ME)
    assert top is not None and top.thread_ts == "1.000100" and top.channel == "C1"
    nested = incoming(
        body(type="app_mention", user="U1", channel="C1", text="hi", thread_ts="0.5"), ME
    )
    assert nested is not None and nested.thread_ts == "0.5"


def test_a_dm_is_answered_at_the_top_unless_it_is_in_a_thread() -> None:
    dm = incoming(body(type="message", channel_type="im", user="U1", channel="D1", text="x"), ME)
    assert dm is not None and dm.thread_ts is None
    mention_in_dm = incoming(body(type="app_mention", user="U1", channel="D1", text="x"), ME)
    assert mention_in_dm is not None and mention_in_dm.thread_ts is None


@pytest.mark.parametrize(
    "event",
    [
        {"type": "message", "channel_type": "im", "user": "U2", "bot_id": "B2", "channel": "D1"},
        {"type": "message", "channel_type": "im", "user": "UBOT", "channel": "D1"},
        {"type": "message", "channel_type": "im", "subtype": "message_changed", "channel": "D1"},
        {"type": "message", "channel_type": "im", "subtype": "message_deleted", "channel": "D1"},
        {"type": "message", "channel_type": "im", "subtype": "bot_message", "channel": "D1"},
        {"type": "message", "channel_type": "channel", "user": "U1", "channel": "C1"},
        {"type": "app_mention", "user": "U2", "bot_id": "B2", "channel": "C1"},
        {"type": "reaction_added", "user": "U1", "channel": "C1"},
        {"type": "app_mention", "channel": "C1"},
    ],
)
def test_quiet_for_bots_edits_and_everything_else(event: dict[str, Any]) -> None:
    assert incoming(body(text="hi", **event), ME) is None


def test_the_prompt_is_readable_text() -> None:
    names = {"U1": "Alice"}
    raw = (
        "<@UBOT> ask <@U1> and <@U2|bob> in <#C1|general> about <https://x.test|this> "
        "&amp; <mailto:a@b.test|a@b.test> &lt;3 <!here> <!subteam^S1|@devs>"
    )
    assert prompt_text(raw, ME, names) == (
        "ask @Alice and @bob in #general about this (https://x.test) & a@b.test <3 @here @devs"
    )
    assert prompt_text("<@UBOT>   reset  ", ME, {}) == "reset"
    assert prompt_text("hey <@UBOT|parley> what now", ME, {}) == "hey what now"
    assert mentioned_users("<@UBOT> <@U1> <@U2|b> <@U1>", ME) == ["U1", "U2"]


def test_seen_cache_forgets_after_its_ttl_and_stays_bounded() -> None:
    now = [0.0]
    seen = SeenCache(ttl=10.0, max_size=3, clock=lambda: now[0])
    assert seen.first_time([("event", "E1"), ("message", "C1", "1")])
    assert not seen.first_time([("event", "E2"), ("message", "C1", "1")])  # same message
    assert not seen.first_time([("event", "E1"), None])  # same event
    now[0] = 11.0
    assert seen.first_time([("event", "E1")])
    for i in range(10):
        seen.first_time([("event", f"X{i}")])
    assert len(seen) == 3
