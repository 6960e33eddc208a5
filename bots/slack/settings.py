"""Slack's settings: the tokens, the Web API's address, the edit budget."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from core.config import AdapterSettings


class SlackSettings(AdapterSettings):
    """SLACK_BOT_TOKEN plus SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP)."""

    title: ClassVar[str] = "slack"

    slack_bot_token: SecretStr | None = Field(
        None, alias="SLACK_BOT_TOKEN", description="Bot User OAuth Token (xoxb-...)"
    )
    slack_app_token: SecretStr | None = Field(
        None, alias="SLACK_APP_TOKEN", description="app-level token (xapp-...): Socket Mode"
    )
    slack_signing_secret: SecretStr | None = Field(
        None,
        alias="SLACK_SIGNING_SECRET",
        description="the app's signing secret: HTTP Events API",
    )
    slack_api_url: str = Field(
        "https://slack.com/api/", alias="SLACK_API_URL", description="Slack's Web API base"
    )
    slack_updates_per_minute: int = Field(
        50,
        alias="PARLEY_SLACK_UPDATES_PER_MINUTE",
        ge=0,
        description="chat.update budget per workspace (0: none)",
    )
