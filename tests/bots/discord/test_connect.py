"""Getting onto Discord: login, the announced gateway, READY, the invite URL, command sync."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from bots.discord import DiscordFrontDoor
from core.errors import ConfigError
from tests.bots.discord.conftest import DoorFactory, Shutdown
from tests.fakes import discord_payloads as p
from tests.fakes.discord import MESSAGE_CONTENT_INTENT, FakeDiscord

GUILDS, GUILD_MESSAGES, DIRECT_MESSAGES = 1 << 0, 1 << 9, 1 << 12


async def test_login_then_gateway_from_get_gateway_bot_then_ready(
    door: DiscordFrontDoor, discord_fake: FakeDiscord
) -> None:
    assert door.connected
    first = [(c.method, c.path) for c in discord_fake.calls[:3]]
    assert first == [
        ("GET", "/users/@me"),
        ("GET", "/oauth2/applications/@me"),
        ("GET", "/gateway/bot"),  # parley asks; discord.py alone would dial gateway.discord.gg
    ]
    # The client dialled the URL the API announced, with discord.py's query.
    assert discord_fake.gateway_queries[0]["v"] == "10"
    assert discord_fake.gateway_queries[0]["encoding"] == "json"
    identify = discord_fake.identifies[0]
    assert identify["token"] == discord_fake.token
    wanted = GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT_INTENT
    assert identify["intents"] & wanted == wanted


async def test_invite_url_asks_for_exactly_the_needed_permissions(door: DiscordFrontDoor) -> None:
    assert door.invite_url is not None
    query = parse_qs(urlparse(door.invite_url).query)
    assert query["client_id"] == [str(p.APP_ID)]
    assert query["scope"] == ["bot applications.commands"]
    view, send, history, threads, commands = 1 << 10, 1 << 11, 1 << 16, 1 << 38, 1 << 31
    assert int(query["permissions"][0]) == view | send | history | threads | commands


async def test_commands_sync_once_then_only_when_their_definition_changes(
    make_door: DoorFactory, shutdown: Shutdown, discord_fake: FakeDiscord, tmp_path: Path
) -> None:
    first = await make_door()
    assert discord_fake.command_syncs == ["global"]
    names = {c["name"] for c in discord_fake.commands["global"]}
    assert names == {"chat", "reset", "model", "system", "memory", "help"}
    state = tmp_path / "parley.db.discord-commands.json"
    assert json.loads(state.read_text())[str(p.APP_ID)]  # the hash, next to the database

    await shutdown(first)
    second = await make_door()
    assert second.connected
    assert discord_fake.command_syncs == ["global"]  # same definitions: no second sync

    await shutdown(second)
    state.write_text(json.dumps({str(p.APP_ID): "an older definition"}))
    await make_door()
    assert discord_fake.command_syncs == ["global", "global"]


async def test_guild_id_syncs_to_that_guild_at_once(
    make_door: DoorFactory, discord_fake: FakeDiscord, tmp_path: Path
) -> None:
    await make_door(discord_guild_id=p.GUILD_ID)
    assert discord_fake.command_syncs == [str(p.GUILD_ID)]
    assert "global" not in discord_fake.commands
    assert not (tmp_path / "parley.db.discord-commands.json").exists()


async def test_a_rejected_token_is_one_clear_sentence(
    make_door: DoorFactory, discord_fake: FakeDiscord
) -> None:
    door = await make_door(start=False, discord_bot_token="not-the-token")
    with pytest.raises(ConfigError, match="Discord rejected DISCORD_BOT_TOKEN"):
        await door.start()
    assert not door.connected


async def test_a_missing_message_content_intent_says_where_to_enable_it(
    make_door: DoorFactory, discord_fake: FakeDiscord
) -> None:
    discord_fake.message_content_allowed = False
    door = await make_door(start=False)
    with pytest.raises(ConfigError, match="Message Content Intent"):
        await door.start()
    assert not door.connected


async def test_an_unreachable_api_is_one_clear_sentence(make_door: DoorFactory) -> None:
    door = await make_door(start=False, discord_api_url="http://127.0.0.1:9/api/v10")
    with pytest.raises(ConfigError, match=r"could not connect to Discord at http://127\.0\.0\.1:9"):
        await door.start()


async def test_no_token_is_a_config_error(make_door: DoorFactory) -> None:
    door = await make_door(start=False, discord_bot_token=None)
    with pytest.raises(ConfigError, match="DISCORD_BOT_TOKEN is not set"):
        await door.start()


async def test_stop_disconnects(door: DiscordFrontDoor, discord_fake: FakeDiscord) -> None:
    await door.stop()
    assert not door.connected
    await discord_fake.until(lambda: discord_fake.connections == 0)
