"""The Slack front door: slack-bolt's AsyncApp over Socket Mode or the HTTP Events API.

Socket Mode when SLACK_BOT_TOKEN and SLACK_APP_TOKEN are set (nothing to expose to the
internet); the HTTP Events API when SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET are set, at
POST /slack/events. Every Web API call, `apps.connections.open` included, goes to
SLACK_API_URL, over one shared aiohttp session. `auth.test` runs once, here at start: bolt's
own single-team authorization would call it lazily on the first events (once per concurrent
event in a burst), so the app gets a pre-built authorization result instead.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import urllib.parse
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bots.bodies import too_deep
from bots.calls import count_calls, slack_method
from bots.kit import start_repairs
from bots.slack.events import PLATFORM, BotIdentity
from bots.slack.listeners import SlackListeners
from bots.slack.mode import INCOMPLETE, Mode, slack_mode
from bots.slack.settings import SlackSettings
from bots.slack.sink import SlackBudgets, repair_message
from core.engine import Engine
from core.errors import ConfigError
from core.transcript import Repair

log = structlog.get_logger(__name__)

EVENTS_PATH = "/slack/events"
HELLO_TIMEOUT = 10.0
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10)


class _ExpectedBoltWarning(logging.Filter):
    """Bolt warns that its `token` goes unused whenever SLACK_BOT_TOKEN is in the environment
    and a client is passed; here that is the design (the token comes from `authorize`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


BOLT_LOGGER = logging.getLogger("slack_bolt.parley")
BOLT_LOGGER.addFilter(_ExpectedBoltWarning())


def api_base_url(url: str) -> str:
    """SLACK_API_URL with exactly one trailing slash: method names are joined onto it."""
    return url.rstrip("/") + "/"


class SlackFrontDoor:
    """Serves one Slack workspace: `await start()`, then `await stop()`."""

    def __init__(self, engine: Engine, settings: SlackSettings) -> None:
        mode = slack_mode(settings)
        if mode is None:
            raise ConfigError(INCOMPLETE)
        self.mode: Mode = mode
        self._engine = engine
        self._settings = settings
        self._base_url = api_base_url(settings.slack_api_url)
        self._session: aiohttp.ClientSession | None = None
        self._app: AsyncApp | None = None
        self._listeners: SlackListeners | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._hello = asyncio.Event()
        self._hello_session: object = None
        self.identity: BotIdentity | None = None
        self._budgets = SlackBudgets(settings.slack_updates_per_minute)
        self._repairs: asyncio.Task[None] | None = None

    # -- public surface --------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """Socket Mode: Slack said hello on the live connection. HTTP: ready for events."""
        if self._app is None:
            return False
        if self.mode == "http":
            return True
        if self._socket is None:
            return False
        current = self._socket.client.current_session
        return current is not None and not current.closed and current is self._hello_session

    def routes(self) -> list[web.RouteDef]:
        """What it serves on parley's one HTTP server: POST /slack/events in HTTP mode."""
        return [web.post(EVENTS_PATH, self._http_event)] if self.mode == "http" else []

    async def start(self) -> None:
        """Identify the bot, build the bolt app, connect (Socket Mode) or take events on
        the routes (HTTP).

        Raises ConfigError, with a sentence for the admin, when Slack rejects a token."""
        if self._session is not None:
            raise RuntimeError("this SlackFrontDoor is already started")
        try:
            self._session = aiohttp.ClientSession(
                timeout=HTTP_TIMEOUT, trace_configs=[count_calls("slack", slack_method)]
            )
            api = self._client(rate_limit_retries=True)
            self.identity = me = await self._identify(api)
            self._listeners = SlackListeners(
                self._engine,
                me,
                api=api,
                stream_api=self._client(rate_limit_retries=False),
                session=self._session,
                budgets=self._budgets,
            )
            app = self._bolt_app(me)
            self._listeners.register(app)
            self._app = app
            if self.mode == "socket":
                await self._connect(app, api)
            log.info("slack_started", mode=self.mode, team=me.team_id, bot_user=me.user_id)
            self._repairs = start_repairs(
                self._engine, PLATFORM, functools.partial(self._repair, api)
            )
        except BaseException:
            await self.stop(grace=0)
            raise

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking events, let replies in flight finish (up to `grace` s), close."""
        app, self._app = self._app, None
        if self._repairs is not None:
            self._repairs.cancel()
            await asyncio.gather(self._repairs, return_exceptions=True)
            self._repairs = None
        if self._socket is not None:
            handler: Any = self._socket  # slack_bolt leaves these methods unannotated
            await handler.close_async()
            self._socket = None
        if self._listeners is not None:
            await self._listeners.close(grace)
            self._listeners = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if app is not None:
            log.info("slack_stopped")

    async def _repair(self, api: AsyncWebClient, repair: Repair) -> None:
        edits = self._budgets.edits(repair.key.workspace)
        await repair_message(api, edits, repair.ref, repair.text)

    # -- construction ----------------------------------------------------------------------
    def _client(self, *, rate_limit_retries: bool) -> AsyncWebClient:
        assert self._session is not None and self._settings.slack_bot_token is not None
        handlers: list[Any] = [AsyncConnectionErrorRetryHandler()]
        if rate_limit_retries:
            handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))
        return AsyncWebClient(
            token=self._settings.slack_bot_token.get_secret_value(),
            base_url=self._base_url,
            session=self._session,
            retry_handlers=handlers,
        )

    async def _identify(self, api: AsyncWebClient) -> BotIdentity:
        try:
            found = await api.auth_test()
        except SlackApiError as exc:
            raise ConfigError(
                f"parley: Slack rejected SLACK_BOT_TOKEN ({exc.response.get('error')}); "
                "copy the Bot User OAuth Token (xoxb-…) from the app's OAuth & Permissions page."
            ) from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ConfigError(
                f"parley: can't reach Slack at {self._base_url} ({type(exc).__name__})."
            ) from None
        return BotIdentity(
            team_id=str(found.get("team_id") or ""),
            user_id=str(found.get("user_id") or ""),
            bot_id=str(found.get("bot_id") or ""),
            enterprise_id=found.get("enterprise_id"),
            team=str(found.get("team") or ""),
            url=str(found.get("url") or ""),
        )

    def _bolt_app(self, me: BotIdentity) -> AsyncApp:
        assert self._session is not None and self._settings.slack_bot_token is not None
        secret = self._settings.slack_signing_secret
        authorized = AuthorizeResult(
            enterprise_id=me.enterprise_id,
            team_id=me.team_id,
            team=me.team,
            url=me.url,
            bot_user_id=me.user_id,
            bot_id=me.bot_id,
            bot_token=self._settings.slack_bot_token.get_secret_value(),
        )

        async def authorize() -> AuthorizeResult:
            return authorized  # auth.test ran once at start; nothing per event

        return AsyncApp(
            name="parley",
            logger=BOLT_LOGGER,
            # A token-less client: bolt copies its settings into one client per request and
            # takes the token from `authorize` (a client with a token as well makes it warn).
            client=AsyncWebClient(base_url=self._base_url, session=self._session),
            authorize=authorize,
            signing_secret=secret.get_secret_value() if secret is not None else "",
            request_verification_enabled=self.mode == "http",
            attaching_conversation_kwargs_enabled=False,
        )

    # -- Socket Mode -----------------------------------------------------------------------
    async def _connect(self, app: AsyncApp, api: AsyncWebClient) -> None:
        assert self._settings.slack_app_token is not None
        app_token = self._settings.slack_app_token.get_secret_value()
        try:  # asked here once, so a bad app token stops the start instead of retrying forever
            opened = await api.apps_connections_open(app_token=app_token)
        except SlackApiError as exc:
            raise ConfigError(
                f"parley: Slack rejected SLACK_APP_TOKEN ({exc.response.get('error')}); it must "
                "be an app-level token (xapp-…) with the connections:write scope."
            ) from None
        handler = AsyncSocketModeHandler(app, app_token=app_token, web_client=api)
        handler.client.message_listeners.append(self._on_socket_message)
        handler.client.wss_uri = str(opened["url"])
        self._socket = handler
        connecting: Any = handler  # slack_bolt leaves connect_async unannotated
        await connecting.connect_async()
        try:
            await asyncio.wait_for(self._hello.wait(), HELLO_TIMEOUT)
        except TimeoutError:
            log.warning("slack_no_hello", timeout=HELLO_TIMEOUT)

    async def _on_socket_message(self, client: Any, message: dict[str, Any], raw: Any) -> None:
        if message.get("type") == "hello":
            self._hello_session = client.current_session
            self._hello.set()
        elif message.get("type") == "disconnect":
            log.info("slack_reconnecting", reason=message.get("reason"))

    # -- HTTP Events API -------------------------------------------------------------------
    async def _http_event(self, request: web.Request) -> web.Response:
        """The signature and timestamp are checked on the raw bytes before anything parses
        them (401); a body nested too deep is refused (400); then bolt answers
        url_verification and acks."""
        app = self._app
        if app is None:
            return web.Response(status=503, text="parley is not ready")
        raw = await request.read()
        if not self._signed(raw, request):
            return web.Response(status=401, text="invalid request signature")
        text = raw.decode("utf-8", "replace")
        form = request.content_type == "application/x-www-form-urlencoded"
        if too_deep(urllib.parse.unquote_plus(text) if form else text):
            return web.Response(status=400, text="the body is nested too deeply")
        response = await app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    def _signed(self, raw: bytes, request: web.Request) -> bool:
        secret = self._settings.slack_signing_secret
        if secret is None:
            return False
        try:
            return SignatureVerifier(secret.get_secret_value()).is_valid(
                raw,
                request.headers.get("X-Slack-Request-Timestamp"),
                request.headers.get("X-Slack-Signature"),
            )
        except ValueError:  # a timestamp that is not a number
            return False
