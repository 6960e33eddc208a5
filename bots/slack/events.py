"""Slack events in, parley's words out: which events to answer, where, and with what prompt.

Pure functions and one small cache; no network. The raw payload stops here: the rest of the
front door sees an `Incoming` (and the engine only a `Turn`).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

PLATFORM = "slack"
BROADCASTS = ("here", "channel", "everyone")

_ANGLE = re.compile(r"<([^<>\n]+)>")
_USER_REF = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^<>]*)?>")


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who parley is in this workspace, from one `auth.test` at start."""

    team_id: str
    user_id: str  # the bot user: what <@…> in a mention points at
    bot_id: str  # set on every message the bot posts
    enterprise_id: str | None = None
    team: str = ""
    url: str = ""


@dataclass(frozen=True, slots=True)
class Incoming:
    """A person's message parley should answer, as Slack wrote it (text still in markup)."""

    team_id: str
    channel: str
    user: str
    text: str
    ts: str
    thread_ts: str | None  # where the answer goes; None answers at the top of a DM
    event_id: str
    direct: bool = False  # a DM: the person's own conversation


def incoming(body: Mapping[str, Any], me: BotIdentity) -> Incoming | None:
    """The message to answer in an Events API payload, or None when parley must stay quiet.

    Quiet for: anything from a bot (itself included), any subtype (edits, deletions, joins,
    bot messages), `message` events outside DMs, and payloads missing what a reply needs.
    """
    event = body.get("event")
    if not isinstance(event, Mapping):
        return None
    kind = event.get("type")
    if kind not in ("app_mention", "message"):
        return None
    if event.get("subtype") or event.get("bot_id") or event.get("bot_profile"):
        return None
    user, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
    if not user or user == me.user_id or not channel or not ts:
        return None
    direct = event.get("channel_type") == "im" or str(channel).startswith("D")
    if kind == "message" and not direct:
        return None  # only DMs arrive as plain messages; channel talk needs a mention
    thread_ts = event.get("thread_ts") or (None if direct else ts)
    return Incoming(
        team_id=str(body.get("team_id") or event.get("team") or me.team_id),
        channel=str(channel),
        user=str(user),
        text=str(event.get("text") or ""),
        ts=str(ts),
        thread_ts=str(thread_ts) if thread_ts else None,
        event_id=str(body.get("event_id") or ""),
        direct=direct,
    )


def mentioned_users(text: str, me: BotIdentity) -> list[str]:
    """User ids mentioned in Slack markup, other than parley, in order of first mention."""
    found = dict.fromkeys(m.group(1) for m in _USER_REF.finditer(text))
    found.pop(me.user_id, None)
    return list(found)


def prompt_text(text: str, me: BotIdentity, names: Mapping[str, str]) -> str:
    """What the model reads: parley's own mention removed, the rest of Slack's markup made
    readable (`<@U1>` -> `@Alice`, `<#C1|general>` -> `#general`, links, entities)."""
    own = re.compile(rf"[ \t]*<@{re.escape(me.user_id)}(?:\|[^<>]*)?>[ \t]?")
    text = own.sub(" ", text).strip()
    text = _ANGLE.sub(lambda m: _readable(m.group(1), names), text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _readable(inner: str, names: Mapping[str, str]) -> str:
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        user = target[1:]
        return "@" + (label or names.get(user) or user)
    if target.startswith("#"):
        return "#" + (label or target[1:])
    if target.startswith("!"):
        word = target[1:]
        if word in BROADCASTS:
            return "@" + word
        if word.startswith("subteam^"):
            return label or "@" + word.removeprefix("subteam^")
        return label or word
    if target.startswith("mailto:"):
        return label or target.removeprefix("mailto:")
    return f"{label} ({target})" if label and label != target else target


class SeenCache:
    """Keys seen recently, so a redelivered event is answered once.

    Slack redelivers an unacknowledged event up to three times within minutes, and a DM or a
    thread mention can arrive both as `app_mention` and as `message` (different event ids,
    same channel and ts). Bounded in size and age so a busy workspace cannot grow it forever.
    """

    def __init__(
        self,
        *,
        ttl: float = 900.0,
        max_size: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._max_size = max_size
        self._clock = clock
        self._expiry: OrderedDict[Hashable, float] = OrderedDict()

    def first_time(self, keys: Iterable[Hashable]) -> bool:
        """Remember `keys`; True when none of them was seen within the ttl."""
        now = self._clock()
        while self._expiry and next(iter(self._expiry.values())) <= now:
            self._expiry.popitem(last=False)
        wanted = [k for k in keys if k is not None]
        fresh = not any(k in self._expiry for k in wanted)
        for key in wanted:
            self._expiry[key] = now + self._ttl
            self._expiry.move_to_end(key)
        while len(self._expiry) > self._max_size:
            self._expiry.popitem(last=False)
        return fresh

    def __len__(self) -> int:
        return len(self._expiry)
