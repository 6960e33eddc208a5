"""What `parley doctor` says of Slack: the same settings check `parley run` makes, then
`auth.test` (and the app token) against SLACK_API_URL."""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.mode import slack_mode
from bots.slack.settings import SlackSettings
from core.checks import Check
from core.errors import ConfigError


async def check(settings: SlackSettings) -> Check:
    """`auth.test` with the bot token, and the app token's `apps.connections.open`."""
    try:
        mode = slack_mode(settings)  # the very check `parley run` makes
    except ConfigError as exc:
        return Check(
            "slack",
            False,
            exc.user_message.removeprefix("parley: "),
            "see README, Connect to Slack",
        )
    if mode is None:
        return Check("slack", None, "not configured (SLACK_BOT_TOKEN is not set)")
    assert settings.slack_bot_token is not None
    base = settings.slack_api_url.rstrip("/") + "/"
    async with aiohttp.ClientSession() as session:
        client = AsyncWebClient(
            token=settings.slack_bot_token.get_secret_value(), base_url=base, session=session
        )
        try:
            auth = await client.auth_test()
            if settings.slack_app_token is not None:
                await client.apps_connections_open(
                    app_token=settings.slack_app_token.get_secret_value()
                )
        except SlackApiError as exc:
            error = exc.response.get("error", "error")
            return Check("slack", False, f"Slack answered {error}", _slack_fix(str(error)))
        except (aiohttp.ClientError, OSError) as exc:
            return Check(
                "slack",
                False,
                f"cannot reach {base} ({type(exc).__name__})",
                "check SLACK_API_URL and the network",
            )
    way = "Socket Mode" if mode == "socket" else "HTTP Events API"
    return Check("slack", True, f"signed in as {auth.get('user')} in {auth.get('team')} ({way})")


def _slack_fix(error: str) -> str:
    if error in ("invalid_auth", "not_authed", "token_revoked", "account_inactive"):
        return "check SLACK_BOT_TOKEN (xoxb-...) and SLACK_APP_TOKEN (xapp-..., connections:write)"
    return "see https://api.slack.com/methods for this error"
