"""What parley sends to Slack: the model's Markdown, closed when partial and unable to ping.

Replies go out as `markdown_text` (standard Markdown, rendered by Slack), so nothing here
converts Markdown to mrkdwn. What must change is anything Slack would turn into a
notification: `<!here>`, `<!channel>`, `<!everyone>`, `<!subteam^…>` and `<@U…>` are Slack's
mention syntax in every text surface (mrkdwn and markdown alike), and plain `@here` /
`@channel` / `@everyone` become mentions when a client or a setting asks Slack to link names.
A zero-width joiner after the `<` (or the `@`) breaks the syntax while the reader still sees
the same characters, so a model quoting Slack syntax never notifies a whole channel.
"""

from __future__ import annotations

import re

from core.split import render_open
from core.streamer import PLACEHOLDER

MARKDOWN_LIMIT = 12_000
"""Slack's limit for `markdown_text` in one message."""

MAX_CHARS = 11_000
"""What the streamer may put in one message: the limit minus room for neutralised pings."""

ZWJ = "\u200d"

# `<` (or an HTML entity for it: Markdown decodes entities) that opens a mention or command.
_ANGLE_PING = re.compile(r"(<|&lt;|&#0*60;|&#x0*3c;)(?=[!@])", re.IGNORECASE)
# References to "!" and "@", decoded first so that the two patterns here see the ping.
_PING_REFS = re.compile(r"&#0*33;|&#x0*21;|&excl;|&#0*64;|&#x0*40;|&commat;", re.IGNORECASE)
# Plain-text broadcast words, not inside a word or an address (bob@here.com stays).
_WORD_PING = re.compile(r"(?<![\w@.\u200d])@(?=(?:here|channel|everyone)\b)", re.IGNORECASE)
# Length-neutral substitutes, used only when the joiners would push a message past the limit.
_COMPACT_ANGLE = "\u2039"  # ‹ single left-pointing angle quotation mark
_COMPACT_AT = "\uff20"  # ＠ fullwidth commercial at


def neutralise(text: str) -> str:
    """`text` with every Slack mention syntax broken by a zero-width joiner."""
    text = _PING_REFS.sub(_decoded, text)
    text = _ANGLE_PING.sub(lambda m: m.group(1) + ZWJ, text)
    return _WORD_PING.sub("@" + ZWJ, text)


def _neutralise_compact(text: str) -> str:
    """Like `neutralise`, but never longer than `text` (visible lookalike characters)."""
    text = _PING_REFS.sub(_decoded, text)
    text = _ANGLE_PING.sub(_COMPACT_ANGLE, text)
    return _WORD_PING.sub(_COMPACT_AT, text)


def _decoded(match: re.Match[str]) -> str:
    ref = match.group().lower()
    return "!" if ref in ("&excl;",) or ref.rstrip(";").endswith(("33", "21")) else "@"


def to_markdown_text(text: str) -> str:
    """The `markdown_text` for one (possibly still streaming) message of a reply.

    Closes a code fence the text ends inside (the streamer leaves room for that), neutralises
    pings, and never returns blank text: Slack rejects a message without visible text.
    """
    shown = render_open(text)
    safe = neutralise(shown)
    if len(safe) > MARKDOWN_LIMIT:
        safe = _neutralise_compact(shown)
    if not safe.strip():
        return PLACEHOLDER
    return safe[:MARKDOWN_LIMIT]


def to_mrkdwn(text: str) -> str:
    """`text` for a legacy mrkdwn `text` field (response_url answers): escaped, no pings."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    safe = _WORD_PING.sub("@" + ZWJ, escaped)
    return safe if safe.strip() else PLACEHOLDER
