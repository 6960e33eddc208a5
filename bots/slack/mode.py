"""Which way parley reaches Slack with the settings given: one answer for `run` and `doctor`."""

from __future__ import annotations

from typing import Literal

from bots.slack.settings import SlackSettings
from core.errors import ConfigError

Mode = Literal["socket", "http"]

INCOMPLETE = (
    "parley: Slack needs SLACK_BOT_TOKEN plus SLACK_APP_TOKEN (Socket Mode) or "
    "SLACK_SIGNING_SECRET (HTTP Events API)."
)
NO_BOT_TOKEN = (
    "parley: SLACK_APP_TOKEN or SLACK_SIGNING_SECRET is set but SLACK_BOT_TOKEN is not: copy the "
    "Bot User OAuth Token (xoxb-...) from the app's OAuth & Permissions page."
)


def slack_mode(settings: SlackSettings) -> Mode | None:
    """Socket Mode (bot + app token; it wins when both ways are set), the HTTP Events API
    (bot token + signing secret), or None when no Slack setting is there at all.

    Raises ConfigError, with the sentence both `parley run` and `parley doctor` show, when
    some Slack settings are set but not enough to connect."""
    bot = settings.slack_bot_token is not None
    app = settings.slack_app_token is not None
    secret = settings.slack_signing_secret is not None
    if not bot:
        if app or secret:
            raise ConfigError(NO_BOT_TOKEN)
        return None
    if app:
        return "socket"
    if secret:
        return "http"
    raise ConfigError(INCOMPLETE)
