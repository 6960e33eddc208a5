"""Which chat platforms the settings connect: one answer for `parley run` and `parley doctor`."""

from __future__ import annotations

from core.config import Settings


def configured_platforms(settings: Settings) -> dict[str, str]:
    """{"slack": "socket" | "http", "discord": "gateway"} for the platforms set up.

    Raises ConfigError (with the sentence both commands show) for a half-set-up platform."""
    from bots.slack.mode import slack_mode

    found: dict[str, str] = {}
    mode = slack_mode(settings)
    if mode is not None:
        found["slack"] = mode
    if settings.discord_bot_token is not None:
        found["discord"] = "gateway"
    return found
