"""The Discord front door: slash commands, mentions and DMs on the shared engine."""

from bots.discord.client import DiscordFrontDoor

__all__ = ["DiscordFrontDoor"]
