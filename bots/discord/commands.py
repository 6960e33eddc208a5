"""parley's slash commands, and syncing them to Discord only when they changed.

Each command is one of the engine's commands, handed to it as a typed `Command` (never
flattened to text and parsed again), so the engine stays the one place that decides what
commands do; `/chat` carries a prompt, whatever its words.

Global commands are synced (one bulk overwrite, `PUT /applications/{id}/commands`) only when
their definition changed: a SHA-256 of the payload is kept per application in a small JSON
file the store gives the door (beside SQLite's database, `<file>.discord-commands.json`; a
store with no place for files means a sync at every start). With
PARLEY_DISCORD_GUILD_ID set, the commands go to that one guild at every start instead, where
Discord shows them at once (handy while developing); global commands are then left alone.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import discord
import structlog
from discord import app_commands

from core.model import Command

log = structlog.get_logger(__name__)

Answer = Callable[[discord.Interaction[Any], str | Command, bool], Awaitable[None]]
"""answer(interaction, a question or a command, ephemeral): runs one turn for it."""

MAX_CHOICES = 25  # Discord's limit for autocomplete answers


def build_tree(
    client: discord.Client, answer: Answer, models: Callable[[], Sequence[str]]
) -> app_commands.CommandTree[Any]:
    """The command tree: /chat streams publicly; the settings commands answer ephemerally."""
    tree: app_commands.CommandTree[Any] = app_commands.CommandTree(client)

    @tree.command(name="chat", description="Ask parley; the answer streams into this channel.")
    @app_commands.describe(prompt="What you want to ask or say")
    async def chat(interaction: discord.Interaction[Any], prompt: str) -> None:
        await answer(interaction, prompt, False)

    # The commands that change a channel are offered to members with Manage Channels (server
    # admins can grant them to others in Server Settings > Integrations); the engine checks
    # again, so a stale permission cannot slip through.
    @tree.command(name="reset", description="Forget this channel's conversation.")
    @app_commands.default_permissions(manage_channels=True)
    async def reset(interaction: discord.Interaction[Any]) -> None:
        await answer(interaction, Command("reset"), True)

    @tree.command(name="model", description="Show this channel's model, or switch to another.")
    @app_commands.default_permissions(manage_channels=True)
    @app_commands.describe(name="The model to use in this channel")
    async def model(interaction: discord.Interaction[Any], name: str | None = None) -> None:
        await answer(interaction, _command("model", name), True)

    @model.autocomplete("name")
    async def model_choices(
        interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        typed = current.lower()
        names = [m for m in models() if typed in m.lower()]
        return [app_commands.Choice(name=m[:100], value=m) for m in names[:MAX_CHOICES]]

    @tree.command(name="system", description="Show this channel's system prompt, or set it.")
    @app_commands.default_permissions(manage_channels=True)
    @app_commands.describe(text="The new system prompt (`default` restores the default)")
    async def system(interaction: discord.Interaction[Any], text: str | None = None) -> None:
        await answer(interaction, _command("system", text), True)

    @tree.command(name="memory", description="Remember this channel's conversation, or not.")
    @app_commands.default_permissions(manage_channels=True)
    @app_commands.describe(state="on: remember; off: answer each message on its own")
    async def memory(
        interaction: discord.Interaction[Any], state: Literal["on", "off"] | None = None
    ) -> None:
        await answer(interaction, _command("memory", state), True)

    @tree.command(name="help", description="What parley understands.")
    async def help_(interaction: discord.Interaction[Any]) -> None:
        await answer(interaction, Command("help"), True)

    return tree


def _command(name: str, arg: str | None) -> Command:
    """The command as Discord delivered it: its option is taken whole, never re-parsed."""
    return Command(name, arg.strip() if arg else "")


def commands_digest(tree: app_commands.CommandTree[Any]) -> str:
    """A hash of what a global sync would send: equal hashes, nothing to sync."""
    payload = sorted((c.to_dict(tree) for c in tree.get_commands()), key=lambda c: c["name"])
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def sync_commands(
    tree: app_commands.CommandTree[Any],
    *,
    application_id: int,
    guild_id: int | None,
    state: Path | None,
) -> Literal["guild", "global", "unchanged"]:
    """Register the commands with Discord, skipping a global sync that would change nothing
    (what was synced is kept in `state`, beside the data; without one, every start syncs)."""
    if guild_id is not None:
        guild = discord.Object(id=guild_id)
        tree.copy_global_to(guild=guild)
        await tree.sync(guild=guild)
        return "guild"
    digest = commands_digest(tree)
    synced = _read(state) if state is not None else {}
    if synced.get(str(application_id)) == digest:
        return "unchanged"
    await tree.sync()
    synced[str(application_id)] = digest
    if state is not None:
        _write(state, synced)
    return "global"


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        log.warning("discord_commands_state_unreadable", path=str(path))
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write(path: Path, synced: dict[str, str]) -> None:
    """Write atomically; a failure only means the next start syncs again."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(synced, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        log.warning("discord_commands_state_not_saved", path=str(path), exc_info=True)
