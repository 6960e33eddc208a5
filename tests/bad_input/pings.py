"""What counts as a ping on each platform, and how to read a neutralised Slack reply back.

Discord: every message parley posts or edits must carry `allowed_mentions` that allow
none (`{"parse": []}`, no user or role lists, the replied-user flag off), whatever the
text says. Slack has no such switch, so the text itself must not hold a ping:

Slack notifies people for its mention syntax in any text surface: `<!here>`, `<!channel>`,
`<!everyone>` (optionally `|label`), `<!subteam^ID>` (a user group) and `<@U…>` / `<@W…>`
(a user). With `link_names`, the plain words `@here`, `@channel` and `@everyone` do too, so
they count here as well. `markdown_text` is Markdown, which decodes character references
(`&lt;`, `&#60;`, `&#x3C;` …, each ending in `;`), so a ping is looked for both in the text
as sent and in the text with those references decoded.
"""

from __future__ import annotations

import html.entities
import re
from typing import Any

from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_routes import Call
from tests.fakes.slack import ApiCall, FakeSlack

ZWJ = "\u200d"
SLACK_WRITES = ("chat.postMessage", "chat.update", "chat.postEphemeral")

ANGLE_PING = re.compile(
    r"<(?:!(?:here|channel|everyone)|!subteam\^[^|>]*|@[UW][A-Z0-9]+)(?:\|[^<>]*)?>",
    re.IGNORECASE,
)
WORD_PING = re.compile(r"(?<![\w@.\u200d])@(?:here|channel|everyone)(?!\w)", re.IGNORECASE)
_REFERENCE = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")


def decode_references(text: str) -> str:
    """`text` with the character references CommonMark decodes (numeric, named) decoded."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name[0] == "#":
            code = int(name[2:], 16) if name[1] in "xX" else int(name[1:])
            return chr(code) if 0 < code < 0x110000 else "\ufffd"
        return html.entities.html5.get(name + ";", match.group())

    return _REFERENCE.sub(one, text)


def active_pings(text: str) -> list[str]:
    """Every Slack ping in `text`, as sent or once Markdown has decoded references."""
    found: list[str] = []
    for shown in dict.fromkeys((text, decode_references(text))):
        found += [m.group() for m in ANGLE_PING.finditer(shown)]
        found += [m.group() for m in WORD_PING.finditer(shown)]
    return found


_ANGLE_REFERENCE = re.compile(r"(&lt;|&#0*60;|&#x0*3c;)(?=\u200d?[!@])", re.IGNORECASE)
_INSERTED_ZWJ = re.compile(
    r"(?<=<|;)\u200d(?=[!@])|(?<=@)\u200d(?=(?:here|channel|everyone)\b)", re.IGNORECASE
)


def unneutralised(text: str) -> str:
    """`text` without what `bots.slack.render` adds to break pings: the zero-width joiner
    after `<` (or a reference to it) or `@`, and the lookalikes ‹ and ＠ it uses when
    joiners would not fit. Applied to a reply and to the model's text alike, it makes
    them comparable (a joiner the model wrote in those places goes on both sides; so does
    a reference to `<` there, which the lookalike may have replaced)."""
    text = _ANGLE_REFERENCE.sub("<", text)
    return _INSERTED_ZWJ.sub("", text).replace("\u2039", "<").replace("\uff20", "@")


_ENDING_ANGLE_REFERENCE = re.compile(r"(&lt;|&#0*60;|&#x0*3c;)\Z", re.IGNORECASE)
_STARTING_PING = re.compile(r"\A\u200d?(?=[!@])")


def unneutralised_thread(messages: list[str]) -> list[str]:
    """`unneutralised` of each message of a split reply, read in order: a reference to `<`
    that ends one message where the next starts with a ping's `!` or `@` is that `<` too, as
    it is in the model's text read whole (and a joiner there, after it, was inserted)."""
    read = list(messages)
    for i in range(len(read) - 1):
        if _ENDING_ANGLE_REFERENCE.search(read[i]) and _STARTING_PING.match(read[i + 1]):
            read[i] = _ENDING_ANGLE_REFERENCE.sub("<", read[i])
            read[i + 1] = _STARTING_PING.sub("", read[i + 1])
    return [unneutralised(m) for m in read]


def slack_writes(slack: FakeSlack, channel: str) -> list[ApiCall]:
    """Every message parley posted or edited in a Slack channel."""
    return [
        c for c in slack.calls if c.method in SLACK_WRITES and c.params.get("channel") == channel
    ]


def check_slack_pings_nobody(calls: list[ApiCall]) -> None:
    """Slack took every call, and no text or markdown_text in them pings anyone."""
    assert calls, "parley sent nothing"
    for call in calls:
        assert call.error is None, f"Slack refused {call.method}: {call.error}"
        for field in ("text", "markdown_text"):
            shown = str(call.params.get(field) or "")
            assert not active_pings(shown), f"{call.method} {field} pings: {shown!r}"


def discord_writes(fake: FakeDiscord, channel_id: int) -> list[Call]:
    """Every message parley posted or edited in a Discord channel."""
    posts = fake.of("POST", rf"/channels/{channel_id}/messages")
    return posts + fake.of("PATCH", rf"/channels/{channel_id}/messages/\d+")


def check_discord_pings_nobody(call: Call) -> None:
    """`{"parse": []}`: no @everyone/@here, no roles, no users; at most the replied-user
    flag, and that one off."""
    mentions: Any = (call.body or {}).get("allowed_mentions")
    assert isinstance(mentions, dict), f"{call.method} {call.path} without allowed_mentions"
    assert mentions.get("parse") == [], mentions
    assert not mentions.get("users") and not mentions.get("roles"), mentions
    assert set(mentions) <= {"parse", "users", "roles", "replied_user"}, mentions
    assert not mentions.get("replied_user"), mentions
