"""Discord API objects as the real API sends them (users, guilds, channels, messages, events).

Only what the fake Discord needs, but complete enough that discord.py parses every one of
them: it reads many keys with `data[...]`, not `.get`.
"""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from typing import Any

DISCORD_EPOCH_MS = 1_420_070_400_000
_increment = itertools.count()

BOT_ID = 1_100_000_000_000_000_001  # the bot user; its application has the same id
APP_ID = BOT_ID
OWNER_ID = 1_100_000_000_000_000_002
GUILD_ID = 1_200_000_000_000_000_001
CHANNEL_ID = 1_200_000_000_000_000_002  # #general
OTHER_CHANNEL_ID = 1_200_000_000_000_000_003  # #random
THREAD_ID = 1_200_000_000_000_000_004  # a thread in #general (not in the gateway's cache)
BOT_ROLE_ID = 1_200_000_000_000_000_009  # parley's managed role
MOD_ROLE_ID = 1_200_000_000_000_000_010  # moderators: Manage Channels, and alice has it
USER_ID = 1_300_000_000_000_000_001  # alice, a person
OTHER_USER_ID = 1_300_000_000_000_000_002  # bob, a person
OTHER_BOT_ID = 1_300_000_000_000_000_003  # another bot in the guild
DM_CHANNEL_ID = 1_400_000_000_000_000_001  # alice's DM with parley

NAMES = {
    BOT_ID: "parley",
    OWNER_ID: "owner",
    USER_ID: "alice",
    OTHER_USER_ID: "bob",
    OTHER_BOT_ID: "otherbot",
}
BOTS = {BOT_ID, OTHER_BOT_ID}
ALL_PERMISSIONS = str((1 << 50) - 1)
# What @everyone may do here: view, send, read history, use commands; not Manage Channels.
MEMBER_PERMISSIONS = str((1 << 10) | (1 << 11) | (1 << 16) | (1 << 31) | (1 << 38))
MODERATORS = {USER_ID}


def snowflake(at: float | None = None) -> int:
    """A fresh id carrying its creation time, as Discord's do (interaction expiry reads it)."""
    ms = int((time.time() if at is None else at) * 1000) - DISCORD_EPOCH_MS
    return (ms << 22) | (next(_increment) & 0x3FFFFF)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def user(user_id: int) -> dict[str, Any]:
    name = NAMES.get(user_id, f"user{user_id % 1000}")
    return {
        "id": str(user_id),
        "username": name,
        "discriminator": "0",
        "global_name": name.title(),
        "avatar": None,
        "bot": user_id in BOTS,
        "public_flags": 0,
    }


def member(user_id: int, *, with_user: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "roles": [str(BOT_ROLE_ID)]
        if user_id == BOT_ID
        else [str(MOD_ROLE_ID)]
        if user_id in MODERATORS
        else [],
        "joined_at": "2024-01-01T00:00:00+00:00",
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "nick": None,
        "avatar": None,
    }
    if with_user:
        data["user"] = user(user_id)
    return data


def text_channel(channel_id: int, name: str, position: int) -> dict[str, Any]:
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(GUILD_ID),
        "name": name,
        "position": position,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "flags": 0,
    }


def dm_channel(channel_id: int, recipient: int) -> dict[str, Any]:
    return {"id": str(channel_id), "type": 1, "recipients": [user(recipient)], "flags": 0}


def role(
    role_id: int, name: str, *, bot_id: int | None = None, permissions: str = ALL_PERMISSIONS
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(role_id),
        "name": name,
        "permissions": permissions if bot_id is None else "0",
        "position": 0 if bot_id is None else 1,
        "color": 0,
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "managed": bot_id is not None,
        "mentionable": False,
        "flags": 0,
    }
    if bot_id is not None:
        data["tags"] = {"bot_id": str(bot_id)}
    return data


def guild() -> dict[str, Any]:
    """GUILD_CREATE's payload; member_count matches the member list, as discord.py checks."""
    members = [member(BOT_ID), member(USER_ID), member(OTHER_USER_ID), member(OTHER_BOT_ID)]
    return {
        "id": str(GUILD_ID),
        "name": "Fake Guild",
        "icon": None,
        "owner_id": str(OWNER_ID),
        "unavailable": False,
        "large": False,
        "member_count": len(members),
        "members": members,
        "channels": [
            text_channel(CHANNEL_ID, "general", 0),
            text_channel(OTHER_CHANNEL_ID, "random", 1),
        ],
        "threads": [],
        "roles": [
            role(GUILD_ID, "@everyone", permissions=MEMBER_PERMISSIONS),
            role(BOT_ROLE_ID, "parley", bot_id=BOT_ID),
            role(MOD_ROLE_ID, "moderators"),
        ],
        "emojis": [],
        "stickers": [],
        "features": [],
        "voice_states": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
        "joined_at": "2024-01-01T00:00:00+00:00",
        "premium_tier": 0,
        "preferred_locale": "en-US",
        "afk_channel_id": None,
        "system_channel_id": None,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "premium_progress_bar_enabled": False,
    }


def application() -> dict[str, Any]:
    return {
        "id": str(APP_ID),
        "name": "parley",
        "description": "",
        "icon": None,
        "bot_public": True,
        "bot_require_code_grant": False,
        "owner": user(OWNER_ID),
        "team": None,
        "verify_key": "0" * 64,
        "flags": 0,
        "summary": "",
    }


def ready(session_id: str, resume_url: str) -> dict[str, Any]:
    return {
        "v": 10,
        "user": {**user(BOT_ID), "verified": True, "mfa_enabled": False, "flags": 0},
        "guilds": [{"id": str(GUILD_ID), "unavailable": True}],
        "session_id": session_id,
        "resume_gateway_url": resume_url,
        "application": {"id": str(APP_ID), "flags": 0},
        "private_channels": [],
        "relationships": [],
        "presences": [],
        "session_type": "normal",
        "shard": [0, 1],
    }


def message(
    message_id: int,
    channel_id: int,
    author_id: int,
    content: str,
    *,
    guild_id: int | None,
    mentions: list[int] | None = None,
    reference: int | None = None,
    flags: int = 0,
    webhook_id: int | None = None,
    edited: bool = False,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(message_id),
        "channel_id": str(channel_id),
        "author": user(author_id),
        "content": content,
        "timestamp": now_iso(),
        "edited_timestamp": now_iso() if edited else None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "components": [],
        "pinned": False,
        "type": 19 if reference is not None else 0,
        "flags": flags,
    }
    if guild_id is not None:
        data["guild_id"] = str(guild_id)
        data["member"] = member(author_id, with_user=False)
        data["mentions"] = [
            {**user(m), "member": member(m, with_user=False)} for m in mentions or []
        ]
    else:
        data["mentions"] = [user(m) for m in mentions or []]
    if reference is not None:
        data["message_reference"] = {
            "type": 0,
            "message_id": str(reference),
            "channel_id": str(channel_id),
            **({"guild_id": str(guild_id)} if guild_id is not None else {}),
        }
    if webhook_id is not None:
        data["webhook_id"] = str(webhook_id)
        data["application_id"] = str(APP_ID)
    return data


def interaction(
    interaction_id: int,
    token: str,
    *,
    kind: int,
    data: dict[str, Any],
    channel_id: int,
    guild_id: int | None,
    user_id: int,
) -> dict[str, Any]:
    """INTERACTION_CREATE: with `attachment_size_limit` and, in a guild, `member.flags`."""
    payload: dict[str, Any] = {
        "id": str(interaction_id),
        "application_id": str(APP_ID),
        "type": kind,
        "data": data,
        "token": token,
        "version": 1,
        "channel_id": str(channel_id),
        "app_permissions": ALL_PERMISSIONS,
        "locale": "en-US",
        "entitlements": [],
        "attachment_size_limit": 10 * 1024 * 1024,
        "authorizing_integration_owners": {"0": str(guild_id)} if guild_id else {"1": "0"},
    }
    if guild_id is not None:
        payload["guild_id"] = str(guild_id)
        payload["guild_locale"] = "en-US"
        payload["guild"] = {"id": str(guild_id), "locale": "en-US", "features": []}
        payload["channel"] = text_channel(channel_id, "general", 0)
        granted = ALL_PERMISSIONS if user_id in MODERATORS else MEMBER_PERMISSIONS
        payload["member"] = {**member(user_id), "permissions": granted}
        payload["context"] = 0
    else:
        payload["channel"] = dm_channel(channel_id, user_id)
        payload["user"] = user(user_id)
        payload["context"] = 1
    return payload
