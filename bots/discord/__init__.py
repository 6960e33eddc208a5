"""The Discord front door: slash commands, mentions and DMs on the shared engine.

Its face for the composition root (bots/faces.py, DoorPackage): NAME, SETTINGS,
SECRET_SHAPES, configured(), build(), check(). discord.py is imported only when the door
is built or checked.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bots.discord.settings import DiscordSettings
from core.checks import Check
from core.engine import Engine

if TYPE_CHECKING:
    from bots.discord.client import DiscordFrontDoor

__all__ = ["NAME", "SECRET_SHAPES", "SETTINGS", "DiscordFrontDoor", "build", "check", "configured"]

NAME = "discord"
SETTINGS = DiscordSettings
SECRET_SHAPES = (
    r"[MNO][A-Za-z\d_\-]{23,27}\.[A-Za-z\d_\-]{6}\.[A-Za-z\d_\-]{27,40}",  # bot tokens
    # an interaction's token in a webhook URL (the route stays readable)
    r"(?P<keep>/(?:webhooks|interactions)/\d+/)[A-Za-z0-9_\-.]{20,}",
)
COMMANDS_STATE = ".discord-commands.json"


def configured(settings: DiscordSettings) -> bool:
    """DISCORD_BOT_TOKEN turns Discord on."""
    return settings.discord_bot_token is not None


def build(
    engine: Engine, settings: DiscordSettings, state_file: Callable[[str], Path | None]
) -> DiscordFrontDoor:
    from bots.discord.client import DiscordFrontDoor

    return DiscordFrontDoor(engine, settings, commands_state=state_file(COMMANDS_STATE))


async def check(settings: DiscordSettings) -> Check:
    from bots.discord.reach import check as reach

    return await reach(settings)


def __getattr__(name: str) -> Any:
    if name == "DiscordFrontDoor":
        from bots.discord.client import DiscordFrontDoor

        return DiscordFrontDoor
    raise AttributeError(name)
