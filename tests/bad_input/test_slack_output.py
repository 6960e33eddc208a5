"""(b, Slack) Whatever the model writes, what parley sends Slack pings nobody, Slack accepts
it, and the thread shows exactly the model's text once the neutralising is read back."""

from __future__ import annotations

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from bots.slack import SlackFrontDoor
from bots.slack.render import MAX_CHARS, to_markdown_text
from core.engine import Outcome
from core.split import is_blank
from tests.bad_input.conftest import Channels, WatchedEngine, examples
from tests.bad_input.known_bugs import tame
from tests.bad_input.pings import (
    active_pings,
    check_slack_pings_nobody,
    slack_writes,
    unneutralised,
    unneutralised_thread,
)
from tests.bad_input.rejoin import as_kept, rejoin
from tests.bad_input.strategies import chunks_of, model_text
from tests.fakes.slack import ApiCall, FakeSlack
from tests.fakes.slack_payloads import BOT_USER_ID
from tests.fakes.upstream import FakeUpstream, Script

ALICE = "U0ALICE"
Door = tuple[SlackFrontDoor, WatchedEngine]


async def reply_in_slack(
    slack_door: Door, slack: FakeSlack, upstream: FakeUpstream, channel: str, script: Script
) -> tuple[list[ApiCall], list[str]]:
    """The model answers a mention as `script` says: every call parley made, and the thread."""
    _, engine = slack_door
    upstream.script(script)
    done = len(engine.results)
    sent = await slack.mention(channel, ALICE, f"<@{BOT_USER_ID}> say it")
    result = await engine.turns_done(done + 1)
    assert result.outcome is Outcome.COMPLETE, result
    thread = slack.thread(channel, sent.payload["event"]["ts"])
    return slack_writes(slack, channel), [m.text for m in thread]


@examples(200)
@given(
    raw=model_text(long_over=MAX_CHARS, max_repeats=2),
    cuts=st.lists(st.integers(0, 100_000), max_size=25),
    interval=st.sampled_from([0.0, 0.0, 0.004, 0.02]),  # > 0: frames are edited in as it grows
)
@example(
    raw="<!channel> <!here> <!everyone> <@U123> <!subteam^S1|@team> @here", cuts=[3], interval=0.02
)
@example(raw="*b* _i_ ~s~ <https://x.test|text> <#C1> &lt;!here&gt; @everyone", cuts=[], interval=0)
@example(raw="```python\nprint('<!here>')\n" + "x = 1\n" * 2500, cuts=[100, 9000], interval=0.02)
@example(raw="<!here> " * 1500, cuts=[5000], interval=0)  # joiners no longer fit: lookalikes
@example(raw="👨\u200d👩\u200d👧" * 5000, cuts=[1, 2], interval=0)
@example(raw="lone \ud800 half, pair \ud83d\ude00 end \ud83d", cuts=[19], interval=0.02)
@example(raw="0🏳️\u200d🌈0000000<@123>&lt;!here&gt;" * 355, cuts=[], interval=0)  # cut after "&lt;"
async def test_model_output_in_slack_pings_nobody_and_rejoins(
    slack_door: Door,
    slack: FakeSlack,
    upstream: FakeUpstream,
    channels: Channels,
    raw: str,
    cuts: list[int],
    interval: float,
) -> None:
    text = tame(raw, MAX_CHARS)
    assume(not is_blank(text))  # blank: see test_a_blank_answer_is_not_left_as_a_placeholder
    script = Script(chunks=chunks_of(text, cuts), interval=interval)
    calls, thread = await reply_in_slack(slack_door, slack, upstream, channels(), script)
    check_slack_pings_nobody(calls)
    kept = unneutralised(as_kept(text))
    pieces = rejoin(unneutralised_thread(thread), kept, closes_last=True)
    assert pieces is not None, f"the thread does not rejoin to the model's text: {thread!r}"


@pytest.mark.parametrize("raw", ["&lt;&#33;here&gt; hi", "ask <&#64;U0BOB> now", "&#64;here"])
def test_a_ping_spelt_with_character_references_is_neutralised(raw: str) -> None:
    assert not active_pings(to_markdown_text(raw))
