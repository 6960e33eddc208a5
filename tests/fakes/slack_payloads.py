"""Slack payloads as Slack sends them: Events API bodies, slash commands, request signatures.

Shared by the fake Slack (which pushes them over Socket Mode) and the HTTP-mode tests (which
POST them, signed, to the front door).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

BOT_TOKEN = "xoxb-0000-fake-bot-token"
APP_TOKEN = "xapp-1-A0PARLEY-fake-app-token"
SIGNING_SECRET = "fake-signing-secret"
TEAM_ID = "T0FAKE"
BOT_USER_ID = "U0PARLEY"
BOT_ID = "B0PARLEY"
APP_ID = "A0PARLEY"
MARKDOWN_LIMIT = 12_000
TEXT_LIMIT = 40_000
USERS = {  # id: (name, real name, display name)
    "U0ALICE": ("alice", "Alice Liddell", "Alice"),
    "U0BOB": ("bob", "Bob Builder", "Bob"),
    BOT_USER_ID: ("parley", "parley", "parley"),
}
ADMINS = {"U0ALICE"}  # workspace admins, as users.info says (is_admin)


def sign(
    body: bytes, *, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    """Headers Slack sends with an HTTP Events API request (v0 HMAC-SHA256 signature)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + stamp.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


def event_body(event: dict[str, Any], event_id: str, team_id: str = TEAM_ID) -> dict[str, Any]:
    """An Events API `event_callback` payload around `event`."""
    return {
        "token": "fake-verification-token",
        "team_id": team_id,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [{"team_id": team_id, "user_id": BOT_USER_ID, "is_bot": True}],
    }


def mention_event(
    channel: str, user: str, text: str, ts: str, team_id: str = TEAM_ID
) -> dict[str, Any]:
    """An `app_mention` event (add `thread_ts` for a mention inside a thread)."""
    event = {"type": "app_mention", "user": user, "text": text, "ts": ts, "channel": channel}
    return event | {"event_ts": ts, "team": team_id}


def dm_event(
    channel: str, user: str | None, text: str, ts: str, team_id: str = TEAM_ID
) -> dict[str, Any]:
    """A `message` event in a DM (`channel_type: im`), as `message.im` delivers it."""
    event: dict[str, Any] = {"type": "message", "channel_type": "im", "text": text, "ts": ts}
    return event | {"channel": channel, "event_ts": ts, "team": team_id, "user": user}


def slash_command(
    text: str,
    user: str,
    channel: str,
    *,
    team_id: str = TEAM_ID,
    command: str = "/parley",
    response_url: str = "",
) -> dict[str, Any]:
    """A slash command invocation (form fields, here as a dict)."""
    return {
        "token": "fake-verification-token",
        "team_id": team_id,
        "channel_id": channel,
        "user_id": user,
        "user_name": USERS.get(user, (user,))[0],
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "response_url": response_url,
        "trigger_id": f"trigger-{time.monotonic_ns()}",
    }


def present(values: dict[str, Any]) -> dict[str, Any]:
    """`values` without the keys set to None (Slack omits absent fields)."""
    return {k: v for k, v in values.items() if v is not None}
