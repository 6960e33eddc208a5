"""Discord's settings: the bot token, the API's address, the request budget."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from core.config import AdapterSettings


class DiscordSettings(AdapterSettings):
    """DISCORD_BOT_TOKEN turns Discord on."""

    title: ClassVar[str] = "discord"

    discord_bot_token: SecretStr | None = Field(
        None, alias="DISCORD_BOT_TOKEN", description="the bot's token"
    )
    discord_api_url: str = Field(
        "https://discord.com/api/v10", alias="DISCORD_API_URL", description="Discord's REST base"
    )
    discord_guild_id: int | None = Field(
        None,
        alias="PARLEY_DISCORD_GUILD_ID",
        description="register the slash commands to this server only",
    )
    discord_requests_per_second: int = Field(
        50,
        alias="PARLEY_DISCORD_REQUESTS_PER_SECOND",
        ge=0,
        description="request budget of the bot (0: none)",
    )
