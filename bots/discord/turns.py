"""Discord events as Turns: which messages are for parley, and what they say to it."""

from __future__ import annotations

import re

import discord

from core.model import ConversationKey, Turn

PLATFORM = "discord"
DM_WORKSPACE = "dm"
_ANSWERED_TYPES = (discord.MessageType.default, discord.MessageType.reply)


def conversation_key(guild_id: int | None, channel_id: int) -> ConversationKey:
    """Memory is per channel: a guild channel, a thread, or a DM (its own channel id)."""
    workspace = str(guild_id) if guild_id is not None else DM_WORKSPACE
    return ConversationKey(PLATFORM, workspace, str(channel_id))


def message_turn(message: discord.Message, me: int) -> Turn | None:
    """The turn a message asks for, or None when it is not for parley.

    Bots (parley included), webhooks and system messages are never answered, so two bots
    cannot talk to each other forever. In a guild only a mention of parley counts: its user,
    a reply that pings it, or its managed role (which Discord offers when people type
    @parley). Every DM is for parley.
    """
    author = message.author
    if author.bot or author.system or message.webhook_id is not None:
        return None
    if message.type not in _ANSWERED_TYPES:
        return None
    guild = message.guild
    role = guild.self_role if guild is not None else None
    role_id = role.id if role is not None else None
    if guild is not None and not _mentions_me(message, me, role_id):
        return None
    text = strip_mentions(message.content, me, role_id)
    return Turn(
        conversation_key(guild.id if guild is not None else None, message.channel.id),
        str(author.id),
        text,
        author_name=author.display_name,
        admin=guild is None or manages_channels(message),
        mentions=raw_mentions(text),
    )


MENTION = re.compile(r"<@[!&]?\d+>")
"""Discord's mention of a member (`<@123>`, `<@!123>`) or a role (`<@&123>`)."""


def raw_mentions(text: str) -> tuple[str, ...]:
    """The mentions in `text`, as Discord writes them (for the engine's checks)."""
    return tuple(MENTION.findall(text))


def manages_channels(message: discord.Message) -> bool:
    """Whether the author has Manage Channels where they wrote (a guild member)."""
    author = message.author
    if not isinstance(author, discord.Member):
        return False
    channel = message.channel
    if isinstance(channel, discord.abc.GuildChannel | discord.Thread):
        return channel.permissions_for(author).manage_channels
    return author.guild_permissions.manage_channels


def strip_mentions(content: str, me: int, role_id: int | None = None) -> str:
    """The prompt without parley's own mention (as a user or as its role)."""
    pattern = rf"<@!?{me}>" + (rf"|<@&{role_id}>" if role_id is not None else "")
    return re.sub(rf"(?:{pattern})[ \t]?", "", content).strip()


def _mentions_me(message: discord.Message, me: int, role_id: int | None) -> bool:
    if me in message.raw_mentions or any(user.id == me for user in message.mentions):
        return True
    return role_id is not None and role_id in message.raw_role_mentions
