"""The Slack front door: mentions and DMs answered in threads, streamed, on the shared engine.

Its face for the composition root (bots/faces.py, DoorPackage): NAME, SETTINGS,
SECRET_SHAPES, configured(), build(), check(). slack-bolt is imported only when the door
is built or checked: a terminal chat's start-up never pays for it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bots.slack.mode import slack_mode
from bots.slack.settings import SlackSettings
from core.checks import Check
from core.engine import Engine

if TYPE_CHECKING:
    from bots.slack.app import SlackFrontDoor

__all__ = [
    "NAME",
    "SECRET_SHAPES",
    "SETTINGS",
    "SlackFrontDoor",
    "build",
    "check",
    "configured",
    "slack_mode",
]

NAME = "slack"
SETTINGS = SlackSettings
SECRET_SHAPES = (
    r"xox[a-z](?:\.xox[a-z])?-[A-Za-z0-9\-]{8,}",  # bot, user and refresh (xoxe.xoxp-) tokens
    r"xapp-[A-Za-z0-9\-]{8,}",  # app-level tokens
    # a command's response_url and incoming webhooks: credentials for as long as they live
    r"(?P<keep>hooks\.slack\.com/(?:commands|services|actions|workflows|triggers)/)[^\s\"'<>]+",
)


def configured(settings: SlackSettings) -> bool:
    """Whether Slack is set up (ConfigError, the sentence `doctor` shows too, when half)."""
    return slack_mode(settings) is not None


def build(
    engine: Engine, settings: SlackSettings, state_file: Callable[[str], Path | None]
) -> SlackFrontDoor:
    from bots.slack.app import SlackFrontDoor

    return SlackFrontDoor(engine, settings)


async def check(settings: SlackSettings) -> Check:
    from bots.slack.reach import check as reach

    return await reach(settings)


def __getattr__(name: str) -> Any:
    if name == "SlackFrontDoor":
        from bots.slack.app import SlackFrontDoor

        return SlackFrontDoor
    raise AttributeError(name)
