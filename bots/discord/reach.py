"""What `parley doctor` says of Discord: the token reaches DISCORD_API_URL."""

from __future__ import annotations

import aiohttp

from bots.discord.settings import DiscordSettings
from core.checks import Check


async def check(settings: DiscordSettings) -> Check:
    """`GET /users/@me` with the bot token against DISCORD_API_URL."""
    if settings.discord_bot_token is None:
        return Check("discord", None, "not configured (DISCORD_BOT_TOKEN is not set)")
    url = settings.discord_api_url.rstrip("/") + "/users/@me"
    headers = {"Authorization": f"Bot {settings.discord_bot_token.get_secret_value().strip()}"}
    try:
        async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as r:
            body = await r.json(content_type=None) if r.status < 500 else {}
            status = r.status
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return Check(
            "discord",
            False,
            f"cannot reach {url} ({type(exc).__name__})",
            "check DISCORD_API_URL and the network",
        )
    if status == 401:
        return Check(
            "discord",
            False,
            "Discord rejected the token (401)",
            "copy the bot token again from the developer portal (Bot > Reset Token)",
        )
    if status != 200:
        return Check("discord", False, f"Discord answered HTTP {status}", "try again later")
    return Check("discord", True, f"signed in as {body.get('username', '?')}")
