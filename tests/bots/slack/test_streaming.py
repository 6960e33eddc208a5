"""Streaming replies into Slack: long replies, safe text, shared limits, failures, startup."""

from __future__ import annotations

from collections import Counter

import pytest

from bots.slack import SlackFrontDoor
from bots.slack.render import MARKDOWN_LIMIT, ZWJ
from core.errors import ConfigError
from core.streamer import PLACEHOLDER
from tests.bots.slack.conftest import Doors
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_payloads import BOT_USER_ID
from tests.fakes.upstream import FakeUpstream, Script

CHANNEL = "C0GENERAL"
ALICE = "U0ALICE"
AT_BOT = f"<@{BOT_USER_ID}>"


async def ask(slack: FakeSlack, text: str, *, channel: str = CHANNEL, user: str = ALICE) -> str:
    """Mention the bot; returns the thread the answer goes to."""
    sent = await slack.mention(channel, user, f"{AT_BOT} {text}")
    return str(sent.payload["event"]["ts"])


async def test_a_long_reply_continues_in_the_thread_with_nothing_lost(
    slack: FakeSlack, upstream: FakeUpstream, door: SlackFrontDoor
) -> None:
    paragraph = "A sentence about streaming, long enough to fill a message quickly. " * 12
    text = "\n\n".join(f"{i}. {paragraph.strip()}" for i in range(30))  # ~24,500 characters
    upstream.script(Script(text=text, chunk_chars=700, interval=0.005))
    thread = await ask(slack, "write a lot")
    await slack.wait_for(lambda: slack.text_in(CHANNEL, thread) == text, timeout=10)
    messages = slack.thread(CHANNEL, thread)
    assert len(messages) >= 3
    assert all(len(m.text) <= MARKDOWN_LIMIT and m.text.strip() for m in messages)
    assert all(e is None for e in (c.error for c in slack.calls))


async def test_pings_in_model_output_notify_nobody(
    slack: FakeSlack, upstream: FakeUpstream, door: SlackFrontDoor
) -> None:
    text = (
        "Hey <!channel> and <!here|here>, also <!everyone>, <!subteam^S0TEAM> and <@U123>! "
        "Plain @here, @channel and @everyone too; &lt;!here&gt; as well. Mail bob@here.com."
    )
    upstream.script(Script(text=text, chunk_chars=7, interval=0.005))
    thread = await ask(slack, "shout")
    await slack.wait_for(lambda: slack.text_in(CHANNEL, thread).replace(ZWJ, "") == text)
    sent = [str(c.params.get("markdown_text")) for c in slack.calls if "chat." in c.method]
    for body in sent:
        for ping in ("<!channel>", "<!here", "<!everyone>", "<!subteam", "<@U123>", "&lt;!"):
            assert ping not in body
        for word in ("@here", "@channel", "@everyone"):
            assert f" {word}" not in body
    assert "bob@here.com" in slack.text_in(CHANNEL, thread)


async def test_twenty_replies_share_one_workspace_budget_without_a_429(
    slack: FakeSlack, upstream: FakeUpstream, doors: Doors
) -> None:
    slack.limit_updates(50, 60.0)
    slack.limit_posts(rate=1.0, burst=3)
    await doors(slack_updates_per_minute=50)
    text = "Every reply streams for a while, in small pieces, so it wants many edits. " * 5
    upstream.script(*[Script(text=text, chunk_chars=12, interval=0.02) for _ in range(20)])
    threads = [
        (channel, await ask(slack, "go", channel=channel, user=f"U0USER{i:02d}"))
        for i, channel in enumerate(f"C0CH{i:02d}" for i in range(20))
    ]
    await slack.wait_for(
        lambda: all(slack.text_in(c, t) == text for c, t in threads), timeout=20, what="20 finals"
    )
    assert slack.rate_limited == Counter()
    assert len(slack.calls_to("chat.update")) <= 50
    assert len(slack.calls_to("chat.postMessage")) == 20
    assert all(len(slack.thread(c, t)) == 1 for c, t in threads)
    assert len(slack.calls_to("auth.test")) == 1  # a burst of first events costs no auth.test
    assert len({c.peer for c in slack.calls}) <= 25 < len(slack.calls)  # one pooled session


async def test_acks_are_prompt_while_the_model_hangs_and_the_failure_lands_in_the_placeholder(
    slack: FakeSlack, upstream: FakeUpstream, doors: Doors
) -> None:
    await doors(first_token_timeout=0.5)
    upstream.script(Script(fault="hang"))
    sent = await slack.mention(CHANNEL, ALICE, f"{AT_BOT} are you there?")
    thread = str(sent.payload["event"]["ts"])
    await slack.wait_for(lambda: "took too long" in slack.text_in(CHANNEL, thread))
    [failed] = [c for c in slack.calls_to("chat.update") if "took too long" in str(c.params)]
    # Both while the model still hung, before its first_token_timeout ran out:
    assert sent.acked_at is not None and sent.acked_at < failed.at  # the ack...
    [reply] = slack.thread(CHANNEL, thread)
    assert reply.versions[0] == PLACEHOLDER and reply.posted_at < failed.at  # ...the placeholder


async def test_an_upstream_error_is_a_sentence_in_the_thread(
    slack: FakeSlack, upstream: FakeUpstream, door: SlackFrontDoor
) -> None:
    upstream.script(Script(status=500), Script(text="Fine now."))
    thread = await ask(slack, "hello?")
    await slack.wait_for(lambda: "server error" in slack.text_in(CHANNEL, thread))
    again = await ask(slack, "and now?")
    await slack.wait_for(lambda: slack.text_in(CHANNEL, again) == "Fine now.")


async def test_a_429_pauses_every_reply_in_the_workspace_for_retry_after(
    slack: FakeSlack, upstream: FakeUpstream, door: SlackFrontDoor
) -> None:
    text = "Twenty-one words stream in slowly enough to want several edits along the way. " * 3
    upstream.script(*[Script(text=text, chunk_chars=10, interval=0.02) for _ in range(2)])
    slack.fail("chat.update", times=1, retry_after=1)
    threads = [(c, await ask(slack, "go", channel=c)) for c in ("C0ONE", "C0TWO")]
    await slack.wait_for(lambda: all(slack.text_in(c, t) == text for c, t in threads), timeout=10)
    updates = slack.calls_to("chat.update")
    [refused] = [c for c in updates if c.status == 429]
    later = updates[updates.index(refused) + 1 :]
    early = [c for c in later if c.at - refused.at < 0.95]  # before Retry-After had passed
    # Only a call already on the wire when the 429 came back may land before Retry-After
    # has passed: the other reply's (a reply makes one call at a time, and the refused one
    # waits). Nothing is sent after it in either channel until then.
    assert len(early) <= 1, early
    assert all(c.params["channel"] != refused.params["channel"] for c in early)
    assert any(c.at - refused.at >= 0.95 for c in later)
    assert slack.rate_limited == Counter({"chat.update": 1})


async def test_a_429_storm_on_posts_still_delivers_the_reply(
    slack: FakeSlack, upstream: FakeUpstream, door: SlackFrontDoor
) -> None:
    upstream.script(Script(text="Delivered after the storm."))
    slack.fail("chat.postMessage", times=2, retry_after=1)
    thread = await ask(slack, "go")
    await slack.wait_for(
        lambda: slack.text_in(CHANNEL, thread) == "Delivered after the storm.", timeout=8
    )
    assert slack.rate_limited["chat.postMessage"] == 2


async def test_slack_api_url_without_a_trailing_slash(
    slack: FakeSlack, upstream: FakeUpstream, doors: Doors
) -> None:
    door = await doors(api_url=slack.api_url.rstrip("/"))
    upstream.script(Script(text="Reached."))
    thread = await ask(slack, "hello")
    await slack.wait_for(lambda: slack.text_in(CHANNEL, thread) == "Reached.")
    assert door.connected


async def test_bad_tokens_stop_the_start_with_a_clear_sentence(
    slack: FakeSlack, doors: Doors
) -> None:
    slack.invalid_auth = True
    with pytest.raises(ConfigError, match="rejected SLACK_BOT_TOKEN"):
        await doors()
    slack.invalid_auth = False
    with pytest.raises(ConfigError, match="rejected SLACK_APP_TOKEN"):
        await doors(slack_app_token="xapp-1-wrong")
    assert slack.connections == 0


async def test_a_disconnect_request_reconnects_and_events_keep_coming(
    slack: FakeSlack, upstream: FakeUpstream, door: SlackFrontDoor
) -> None:
    await slack.disconnect()
    await slack.wait_for(lambda: slack.connections == 2, what="a reconnection")
    upstream.script(Script(text="Still here."))
    thread = await ask(slack, "still there?")
    await slack.wait_for(lambda: slack.text_in(CHANNEL, thread) == "Still here.")
    assert len(slack.calls_to("apps.connections.open")) == 2
    assert door.connected  # the new connection's hello came before the event


async def test_a_crowd_over_the_stream_cap_waits_in_line_and_everyone_is_answered(
    slack: FakeSlack, upstream: FakeUpstream, doors: Doors
) -> None:
    slack.limit_updates(50, 60.0)  # Slack's real limits: the signs must fit them too
    slack.limit_posts(1.0, 3)
    await doors(max_concurrent_streams=3)
    upstream.default = Script(text="Here is your answer, in full.", chunk_chars=4, interval=0.03)
    channels = [f"C0CROWD{n:02d}" for n in range(12)]
    threads = [
        await ask(slack, "a question", channel=c, user=f"U{n:04d}") for n, c in enumerate(channels)
    ]

    def signs() -> int:
        return sum(bool(slack.thread(c, t)) for c, t in zip(channels, threads, strict=True))

    await slack.wait_for(lambda: signs() == 12, timeout=3, what="a sign in every thread")
    firsts = [slack.thread(c, t)[0].versions[0] for c, t in zip(channels, threads, strict=True)]
    assert sum("Waiting for my turn" in f for f in firsts) >= 8
    await slack.wait_for(
        lambda: all(
            slack.text_in(c, t) == "Here is your answer, in full."
            for c, t in zip(channels, threads, strict=True)
        ),
        timeout=20,
        what="every answer",
    )
    assert upstream.peak_concurrent <= 3 and len(upstream.requests) == 12
    assert not slack.ephemerals and not slack.rate_limited
    assert all(len(slack.thread(c, t)) == 1 for c, t in zip(channels, threads, strict=True))


async def test_a_hundred_answers_at_once_in_one_workspace_end_at_once_without_a_429(
    slack: FakeSlack, upstream: FakeUpstream, doors: Doors
) -> None:
    slack.limit_updates(50, 60.0)  # chat.update: 50 a minute for the whole workspace
    slack.limit_ephemerals(100, 60.0)
    slack.limit_posts(1.0, 3)
    await doors()
    answer = "Tides rise and fall twice a day, pulled by the moon and, less, by the sun."
    upstream.default = Script(text=answer, chunk_chars=6, interval=0.02)
    channels = [f"C0MANY{n:03d}" for n in range(100)]
    threads = [
        await ask(slack, "tides?", channel=c, user=f"U{n:04d}") for n, c in enumerate(channels)
    ]
    pairs = list(zip(channels, threads, strict=True))
    await slack.wait_for(
        lambda: all(slack.text_in(c, t) == answer for c, t in pairs), timeout=20, what="answers"
    )
    assert not slack.rate_limited
    assert all(len(slack.thread(c, t)) == 1 for c, t in pairs)  # the answer, nothing else
    # Past half the workspace's chat.update budget, replies answered in one post, and the
    # asker saw an ephemeral meanwhile, in the thread.
    quiet = [m for m in slack.messages if m.versions == [answer]]
    assert len(quiet) >= 70
    assert len(slack.ephemerals) >= 70
    assert all(e["thread_ts"] and e["user"].startswith("U") for e in slack.ephemerals)
    assert len(slack.calls_to("chat.update")) <= 50
