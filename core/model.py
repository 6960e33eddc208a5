"""Data that crosses layers: plain frozen dataclasses, never a platform's raw payload."""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """Where a conversation lives: memory is per channel (a DM is a channel too)."""

    platform: str
    workspace: str
    channel: str

    def __str__(self) -> str:
        return f"{self.platform}:{self.workspace}:{self.channel}"


def new_request_id() -> str:
    """A short id that ties every log line of one turn together."""
    return uuid.uuid4().hex[:16]


@dataclass(frozen=True, slots=True)
class Command:
    """A command: `name` is one of core.commands.NAMES, or "unknown" (`arg`: the word)."""

    name: str
    arg: str = ""


@dataclass(frozen=True, slots=True)
class Turn:
    """One thing a person said to parley, already translated by an adapter."""

    key: ConversationKey
    author: str
    text: str
    author_name: str = ""
    request_id: str = field(default_factory=new_request_id)
    admin: bool = False
    """The author may change this channel's settings, as the front door knows it: a Slack
    workspace admin, a Discord member with Manage Channels there, the person in their own
    DM, the terminal's operator, the API's token holder (PARLEY_ADMINS are added by the
    engine)."""
    ask_admin: Callable[[], Awaitable[bool]] | None = None
    """When `admin` is False: how to learn whether the author is an admin after all (Slack
    asks users.info). The engine calls it only for a command that changes the channel, in
    the conversation's order, so a front door never waits before handing a turn in."""
    command: Command | None = None
    """A command the platform already parsed (a slash command and its option): the engine
    runs it as it is. None: the engine reads `text`, where `reset` or `/help` are commands."""
    words_are_commands: bool = True
    """False where the platform says `text` is a question (Discord's /chat): nothing in it
    is read as a command."""
    mentions: tuple[str, ...] = ()
    """The mentions of people or roles in `text`, as the platform writes them: a message of
    nothing else asks nothing (the engine says so instead of asking the model)."""


class Role(enum.StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class MessageStatus(enum.StrEnum):
    """How a stored message ended; user messages are always complete."""

    COMPLETE = "complete"
    STREAMING = "streaming"
    PARTIAL = "partial"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message as sent upstream."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One message as kept in memory, with its token count (reported or estimated)."""

    role: Role
    content: str
    tokens: int
    status: MessageStatus = MessageStatus.COMPLETE
    author: str = ""
    request_id: str = ""
    created_at: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage the upstream reported for one completion."""

    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """Per-conversation choices made with the `model`, `system` and `memory` commands.

    `None` means "use the process default".
    """

    model: str | None = None
    system_prompt: str | None = None
    memory: bool = True


def estimate_tokens(text: str) -> int:
    """A cheap token estimate (about four characters a token) for when upstream reports none."""
    return max(1, (len(text) + 3) // 4)


@dataclass(frozen=True, slots=True)
class DanglingReply:
    """A reply a crash cut off: its platform message still shows an unfinished answer."""

    message_id: int
    key: ConversationKey
    content: str
    platform_ref: str
