"""Platform API calls are counted for /metrics, with no id or token in a label."""

from __future__ import annotations

from yarl import URL

from bots.calls import discord_route, slack_method

TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDEyMzQ1Njc4OTA6c2VjcmV0LXRva2Vu"


def test_routes_lose_their_ids_and_tokens() -> None:
    assert slack_method(URL("http://127.0.0.1:9/api/chat.update")) == "chat.update"
    assert discord_route(URL("http://x/api/v10/channels/1234567890123/messages/99")) == (
        "/channels/{id}/messages/{id}"
    )
    route = discord_route(URL(f"http://x/api/v10/webhooks/123/{TOKEN}/messages/@original"))
    assert route == "/webhooks/{id}/{token}/messages/@original" and TOKEN not in route
