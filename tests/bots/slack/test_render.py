"""What parley sends to Slack: pings broken, fences closed, never blank, never too long."""

from __future__ import annotations

import pytest

from bots.slack.render import (
    MARKDOWN_LIMIT,
    MAX_CHARS,
    ZWJ,
    neutralise,
    to_markdown_text,
    to_mrkdwn,
)
from core.streamer import FENCE_RESERVE, PLACEHOLDER


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("<!channel> hi", f"<{ZWJ}!channel> hi"),
        ("<!here|@here> and <!everyone>", f"<{ZWJ}!here|@{ZWJ}here> and <{ZWJ}!everyone>"),
        ("<!subteam^S0TEAM|@team>", f"<{ZWJ}!subteam^S0TEAM|@team>"),
        ("ask <@U123> or <@W456|bob>", f"ask <{ZWJ}@U123> or <{ZWJ}@W456|bob>"),
        (
            "&lt;!here&gt; &#60;!channel&gt; &#x3C;@U1&gt;",
            f"&lt;{ZWJ}!here&gt; &#60;{ZWJ}!channel&gt; &#x3C;{ZWJ}@U1&gt;",
        ),
        ("@here, @Channel! (@everyone)", f"@{ZWJ}here, @{ZWJ}Channel! (@{ZWJ}everyone)"),
        (
            "mail bob@here.com about @heretic and @channels",
            "mail bob@here.com about @heretic and @channels",
        ),
        ("<https://example.com|a link> and <#C123>", "<https://example.com|a link> and <#C123>"),
    ],
)
def test_neutralise_breaks_every_mention_and_nothing_else(text: str, shown: str) -> None:
    assert neutralise(text) == shown
    assert neutralise(text).replace(ZWJ, "") == text


def test_markdown_text_closes_an_open_fence_and_is_never_blank() -> None:
    assert to_markdown_text("look:\n```python\nprint(1)\n") == "look:\n```python\nprint(1)\n```"
    assert to_markdown_text("  \n ") == PLACEHOLDER
    assert to_markdown_text("**bold** [link](https://x.test)") == "**bold** [link](https://x.test)"


def test_a_message_full_of_pings_still_fits_slack_limit() -> None:
    full = ("<!here> " * MAX_CHARS)[: MAX_CHARS - FENCE_RESERVE]
    shown = to_markdown_text(full)
    assert len(shown) <= MARKDOWN_LIMIT
    assert "<!here>" not in shown and "<!" not in shown


def test_mrkdwn_escapes_control_characters() -> None:
    assert to_mrkdwn("a < b & <!here> @here") == f"a &lt; b &amp; &lt;!here&gt; @{ZWJ}here"
