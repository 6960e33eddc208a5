"""DiscordFrontDoor: parley on Discord — slash commands, mentions and DMs — through discord.py.

The REST base comes from DISCORD_API_URL (`discord.http.Route.BASE`), and the gateway is the
one that API announces at `GET /gateway/bot`: discord.py's plain Client would dial
`wss://gateway.discord.gg/` whatever the API said, so parley asks and sets
`DiscordWebSocket.DEFAULT_GATEWAY` itself. Both are class attributes of discord.py, i.e. one
Discord per process.

Hot path: discord.py runs each event handler and each command in a task of its own, and
nothing slow sits between an event and the engine — no typing call, no lookup; a slash
command's deferral goes out concurrently with the engine's first steps.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import discord
import structlog
import yarl
from aiohttp import web
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bots.discord.budgets import DiscordBudgets, watch_rate_limits
from bots.discord.commands import build_tree, sync_commands
from bots.discord.settings import DiscordSettings
from bots.discord.sink import TOKEN_LIFETIME, InteractionSink, MessageSink, repair_message
from bots.discord.turns import PLATFORM, conversation_key, message_turn, raw_mentions
from bots.kit import Turns, start_repairs
from core.engine import Engine
from core.errors import ConfigError
from core.model import Command, Turn
from core.sink import ReplySink
from core.transcript import Repair

log = structlog.get_logger(__name__)

PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,  # answering a mention inside a thread
    read_message_history=True,  # a reply (message_reference) needs it
    use_application_commands=True,
)
SCOPES = ("bot", "applications.commands")
READY_TIMEOUT = 30.0
STOP_GRACE = 5.0
RATE_LIMIT_CEILING = 30.0
"""discord.py sleeps through 429s up to this long; longer ones reach the streamer."""

NO_TOKEN = "parley: DISCORD_BOT_TOKEN is not set."
BAD_TOKEN = (
    "parley: Discord rejected DISCORD_BOT_TOKEN. Copy the bot's token again from the developer "
    "portal (your application > Bot > Reset Token)."
)
NO_INTENT = (
    "parley: Discord refused the Message Content intent. Enable it in the developer portal "
    "(your application > Bot > Privileged Gateway Intents > Message Content Intent), save, "
    "and start parley again."
)


def intents() -> discord.Intents:
    """The default intents plus message_content, without which mentions arrive empty."""
    chosen = discord.Intents.default()
    chosen.message_content = True
    return chosen


class _Client(discord.Client):
    """discord.py's Client with parley's two hooks: setup at login, and messages."""

    def __init__(self, door: DiscordFrontDoor, **options: Any) -> None:
        super().__init__(**options)
        self._door = door

    async def setup_hook(self) -> None:
        await self._door._prepare(self)

    async def on_message(self, message: discord.Message) -> None:
        await self._door._on_message(message)


class DiscordFrontDoor:
    """Connects the engine to Discord: `await start()`, later `await stop()`."""

    def __init__(
        self,
        engine: Engine,
        settings: DiscordSettings,
        *,
        commands_state: Path | None = None,
        guild_ready_timeout: float = 2.0,
        ready_timeout: float = READY_TIMEOUT,
        token_lifetime: float = TOKEN_LIFETIME,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._commands_state = commands_state
        self._guild_ready_timeout = guild_ready_timeout
        self._ready_timeout = ready_timeout
        self._token_lifetime = token_lifetime
        self._budgets = DiscordBudgets(settings.discord_requests_per_second)
        self._client: _Client | None = None
        self._tree: app_commands.CommandTree[Any]  # built with each client
        self._runner: asyncio.Task[None] | None = None
        self._turns = Turns(PLATFORM)
        self._stopping = False
        self.invite_url: str | None = None
        self._repairs: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """Logged in, past READY, and the gateway socket is open."""
        client = self._client
        if client is None or client.is_closed() or not client.is_ready():
            return False
        ws = client.ws
        return ws is not None and ws.open

    async def start(self) -> None:
        """Log in, sync commands, connect; return once ready, or raise ConfigError saying why."""
        if self._client is not None:
            raise RuntimeError("this DiscordFrontDoor is already started")
        secret = self._settings.discord_bot_token
        token = secret.get_secret_value().strip() if secret is not None else ""
        if not token:
            raise ConfigError(NO_TOKEN)
        api = self._settings.discord_api_url.rstrip("/")
        Route.BASE = api
        self._stopping = False
        self._client = client = self._new_client()
        try:
            await client.login(token)
            self._log_invite(client)
            self._runner = asyncio.create_task(client.connect(), name="parley-discord-gateway")
            self._runner.add_done_callback(self._gateway_ended)
            await self._until_ready(client, self._runner)
        except BaseException as exc:
            await self.stop(grace=0)
            if isinstance(exc, ConfigError | asyncio.CancelledError):
                raise
            raise _start_error(exc, api) from exc
        log.info("discord_ready", user=str(client.user), guilds=len(client.guilds))
        self._repairs = start_repairs(
            self._engine, PLATFORM, functools.partial(self._repair, client)
        )

    async def _repair(self, client: discord.Client, repair: Repair) -> None:
        await repair_message(client, self._budgets, repair.ref, repair.text)

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop taking events, give replies in flight `grace` seconds, then disconnect."""
        self._stopping = True
        if self._repairs is not None:
            self._repairs.cancel()
            await asyncio.gather(self._repairs, return_exceptions=True)
            self._repairs = None
        await self._turns.close(grace)
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            if not runner.done():
                await asyncio.wait({runner}, timeout=STOP_GRACE)
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)

    def routes(self) -> list[web.RouteDef]:
        """Nothing on the HTTP server: Discord comes over the gateway."""
        return []

    def _gateway_ended(self, runner: asyncio.Task[None]) -> None:
        """discord.py reconnects by itself; when it gives up, say so (readiness turns false)."""
        if self._stopping or runner.cancelled():
            return
        error = runner.exception()
        log.error("discord_disconnected", error=repr(error) if error else "closed")

    # -- start ----------------------------------------------------------------------------
    def _new_client(self) -> _Client:
        client = _Client(
            self,
            intents=intents(),
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=self._guild_ready_timeout,
            http_trace=watch_rate_limits(self._budgets),
            max_ratelimit_timeout=RATE_LIMIT_CEILING,
            max_messages=None,  # parley never looks messages up: keep no cache
            chunk_guilds_at_startup=False,
        )
        self._tree = build_tree(client, self._on_command, lambda: self._engine.settings.model_names)
        return client

    async def _prepare(self, client: _Client) -> None:
        """At login, before the gateway: find the gateway, register the commands."""
        _shards, url, _limit = await client.http.get_bot_gateway()
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
        if client.application_id is None:
            raise ConfigError("parley: Discord did not tell parley its application id.")
        try:
            outcome = await sync_commands(
                self._tree,
                application_id=client.application_id,
                guild_id=self._settings.discord_guild_id,
                state=self._commands_state,
            )
        except discord.HTTPException as exc:
            # Mentions and DMs still work without slash commands: keep going.
            log.error("discord_commands_not_synced", status=exc.status, detail=exc.text)
        else:
            log.info("discord_commands", sync=outcome, guild=self._settings.discord_guild_id)

    def _log_invite(self, client: _Client) -> None:
        if client.application_id is None:
            return
        self.invite_url = discord.utils.oauth_url(
            client.application_id, permissions=PERMISSIONS, scopes=SCOPES
        )
        log.info("discord_invite", url=self.invite_url, permissions=PERMISSIONS.value)

    async def _until_ready(self, client: _Client, runner: asyncio.Task[None]) -> None:
        ready = asyncio.ensure_future(client.wait_until_ready())
        try:
            done, _ = await asyncio.wait(
                {ready, runner}, timeout=self._ready_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            ready.cancel()
        if ready in done:
            return
        if runner in done:
            raise runner.exception() or ConnectionError("the gateway closed before READY")
        raise TimeoutError(f"no READY from Discord's gateway within {self._ready_timeout:g} s")

    # -- events ---------------------------------------------------------------------------
    async def _on_message(self, message: discord.Message) -> None:
        client = self._client
        if self._stopping or client is None or client.user is None:
            return
        turn = message_turn(message, client.user.id)
        if turn is None:
            return
        guild_id = message.guild.id if message.guild is not None else None
        channel = client.get_partial_messageable(message.channel.id, guild_id=guild_id)
        await self._run(turn, MessageSink(channel, self._budgets, trigger=message))

    async def _on_command(
        self, interaction: discord.Interaction[Any], asked: str | Command, ephemeral: bool
    ) -> None:
        """One slash command: defer at once (the first visible sign), then the engine."""
        deferred = asyncio.ensure_future(
            interaction.response.defer(ephemeral=ephemeral, thinking=True)
        )
        try:
            client = self._client
            channel_id = interaction.channel_id
            if self._stopping or client is None or channel_id is None:
                return
            channel = client.get_partial_messageable(channel_id, guild_id=interaction.guild_id)
            sink = InteractionSink(
                interaction,
                deferred,
                channel,
                self._budgets,
                ephemeral=ephemeral,
                token_lifetime=self._token_lifetime,
            )
            user = interaction.user
            key = conversation_key(interaction.guild_id, channel_id)
            # Discord resolves the member's permissions in that channel into the interaction.
            admin = interaction.guild_id is None or interaction.permissions.manage_channels
            if isinstance(asked, Command):  # typed by Discord: run as it is
                text, command = _shown(asked), asked
            else:  # /chat: a question, whatever its words
                text, command = asked, None
            turn = Turn(
                key,
                str(user.id),
                text,
                author_name=user.display_name,
                admin=admin,
                command=command,
                words_are_commands=False,
                mentions=raw_mentions(text),
            )
            await self._run(turn, sink)
        finally:
            await asyncio.gather(deferred, return_exceptions=True)

    async def _run(self, turn: Turn, sink: ReplySink) -> None:
        """One turn; whatever happens, the client keeps serving everyone else."""
        task = asyncio.current_task()
        if task is not None:
            self._turns.track(task)  # discord.py's dispatch task: stop() gives it its grace
        try:
            await self._engine.handle(turn, sink)
        except Exception:  # Engine.handle never raises; this guards the client anyway
            log.exception("turn_crashed", platform=PLATFORM, request_id=turn.request_id)


def _start_error(exc: BaseException, api: str) -> ConfigError:
    """The sentence an admin needs when parley cannot get onto Discord."""
    if isinstance(exc, discord.LoginFailure) or (
        isinstance(exc, discord.ConnectionClosed) and exc.code == 4004
    ):
        return ConfigError(BAD_TOKEN)
    if isinstance(exc, discord.PrivilegedIntentsRequired):
        return ConfigError(NO_INTENT)
    if isinstance(exc, TimeoutError):
        return ConfigError(f"parley: could not get onto Discord's gateway: {exc}.")
    if isinstance(exc, discord.HTTPException):
        # Not the response text: a server or proxy may echo the request's token in it.
        return ConfigError(
            f"parley: Discord at {api} refused the connection (HTTP {exc.status},"
            f" code {exc.code}); check DISCORD_BOT_TOKEN and DISCORD_API_URL."
        )
    return ConfigError(
        f"parley: could not connect to Discord at {api} ({type(exc).__name__});"
        " check DISCORD_API_URL and the network."
    )


def _shown(command: Command) -> str:
    """How a typed command reads in logs: `/model gpt-4o`."""
    return f"/{command.name} {command.arg}".rstrip()
