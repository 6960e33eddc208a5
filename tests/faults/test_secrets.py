"""No secret ever leaves parley except to the service it belongs to.

Recognisable fake secrets (OPENAI_API_KEY, SLACK_BOT_TOKEN, SLACK_APP_TOKEN, DISCORD_BOT_TOKEN,
PARLEY_API_TOKEN) go through a full turn on every front door and through error paths that
tempt a leak (an upstream 401 whose message echoes the key, Slack's invalid_auth). Then every
log line, every call and message sent to a platform (parameters and bodies), every HTTP
response, every byte a subprocess printed and every file parley wrote (the database and its
WAL included) is searched for them, whole and in part.
The one place a secret may go is its own service's authentication (a request's auth header,
Discord's IDENTIFY and RESUME), which no surface here includes; the upstream's header is checked
apart, to prove the key was really in use.
"""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bots.slack import SlackFrontDoor
from core.errors import ConfigError
from tests.fakes import discord_payloads as p
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack
from tests.fakes.upstream import DEFAULT_TEXT, FakeUpstream, Script
from tests.faults.conftest import (
    ALICE,
    AT_DISCORD,
    AT_SLACK,
    SLACK_CHANNEL,
    Capture,
    Spawned,
    Stack,
    spawn,
)

OPENAI_KEY = "sk-parleytest-SECRET-openai-7Qx9Lm2Pz4Rt8Vw1"
SLACK_BOT = "xoxb-1234-5678-parleytest-SECRET-slackbot-K3j8Hs2Q"
SLACK_APP = "xapp-1-A0PARLEY-parleytest-SECRET-slackapp-N5h2Wd9C"
DISCORD = "MTEwMDAwMDAwMDAwMDAwMDAwMQ.GpTsEc.parleytest-SECRET-discord-W6y4Bq7Z"
API_TOKEN = "parleytest-SECRET-api-token-H8d3Fk5J"
SECRETS = (OPENAI_KEY, SLACK_BOT, SLACK_APP, DISCORD, API_TOKEN)
# A secret leaks in part too (masked, truncated): its marker or its tail is enough to tell.
FRAGMENTS = (*SECRETS, "parleytest-SECRET", *(s[-8:] for s in SECRETS))

ENV = {
    "OPENAI_API_KEY": OPENAI_KEY,
    "SLACK_BOT_TOKEN": SLACK_BOT,
    "SLACK_APP_TOKEN": SLACK_APP,
    "DISCORD_BOT_TOKEN": DISCORD,
    "PARLEY_API_TOKEN": API_TOKEN,
}
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
ECHO_401 = Script(
    status=401,
    message=f"Incorrect API key provided: {OPENAI_KEY}. You can find your API key at "
    "https://platform.openai.com/account/api-keys.",
)


class Surfaces:
    """Everything parley showed to anyone, by where it showed it."""

    def __init__(self) -> None:
        self.seen: dict[str, list[str]] = {}

    def add(self, where: str, value: Any) -> None:
        text = value if isinstance(value, str) else json.dumps(value, default=repr)
        self.seen.setdefault(where, []).append(text)

    def add_slack(self, slack: FakeSlack) -> None:
        for call in slack.calls:  # params as sent (the auth header is not recorded)
            self.add(f"slack {call.method} params", [call.params, call.error])
        for message in slack.messages:
            self.add("slack messages", message.versions)
        self.add("slack ephemerals", slack.ephemerals)
        self.add("slack response_url posts", slack.responses)
        self.add("slack socket acks", [e.ack_payload for e in slack.envelopes.values()])

    def add_discord(self, discord: FakeDiscord) -> None:
        for call in discord.calls:
            self.add(f"discord {call.method} {call.path}", [call.path, call.query, call.body])
        for message in discord.messages.values():
            self.add("discord messages", [message.content, message.history])
        self.add("discord interactions", [vars(i) for i in discord.interactions.values()])

    def add_upstream(self, upstream: FakeUpstream) -> None:
        for request in upstream.requests:
            headers = {k: v for k, v in request["headers"].items() if k != "authorization"}
            self.add("upstream request", [request["path"], request["body"], headers])

    def add_files(self, folder: Path) -> None:
        """Every file parley wrote (the database, its WAL, the commands state), as bytes."""
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                self.add(f"file {path.name}", path.read_bytes().decode("latin-1"))

    def leaks(self) -> dict[str, list[str]]:
        """Where each fragment of a secret showed up."""
        found: dict[str, list[str]] = {}
        for where, texts in self.seen.items():
            hits = sorted({f for f in FRAGMENTS for text in texts if f in text})
            if hits:
                found[where] = hits
        return found


def assert_no_leak(surfaces: Surfaces) -> None:
    assert surfaces.seen, "nothing was captured"
    assert surfaces.leaks() == {}


def assert_key_was_used(upstream: FakeUpstream) -> None:
    """The key went where it belongs (else this suite would prove nothing)."""
    assert upstream.requests
    assert all(r["headers"]["authorization"] == f"Bearer {OPENAI_KEY}" for r in upstream.requests)


@pytest.fixture
async def secret_slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token=SLACK_BOT, app_token=SLACK_APP) as fake:
        yield fake


@pytest.fixture
async def secret_discord() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(token=DISCORD) as fake:
        yield fake


@pytest.fixture
async def secret_stack(
    upstream: FakeUpstream, secret_slack: FakeSlack, secret_discord: FakeDiscord, tmp_path: Path
) -> AsyncIterator[Stack]:
    built = Stack(upstream, secret_slack, secret_discord, tmp_path / "parley.db")
    yield built
    await built.close()


SECRET_SETTINGS: dict[str, Any] = {"openai_api_key": OPENAI_KEY, "api_token": API_TOKEN}


# -- in process ----------------------------------------------------------------------------
async def test_slack_turns_and_failures_show_no_secret(
    secret_stack: Stack, secret_slack: FakeSlack, upstream: FakeUpstream, capture_logs: Capture
) -> None:
    logs = capture_logs(secret_stack.settings(**SECRET_SETTINGS))
    engine = await secret_stack.engine(**SECRET_SETTINGS)
    await secret_stack.slack_door(engine)
    finished = secret_stack.finished[id(engine)]
    slack = secret_slack

    upstream.script(Script(text=DEFAULT_TEXT), ECHO_401)
    first = await slack.mention(SLACK_CHANNEL, ALICE, f"{AT_SLACK} hello")
    await finished.wait(1)
    failing = await slack.mention(SLACK_CHANNEL, ALICE, f"{AT_SLACK} and now?")
    await finished.wait(2)
    await slack.slash("help", ALICE, SLACK_CHANNEL)
    await finished.wait(3)
    await slack.dm("D0ALICE", ALICE, "a direct message")
    await finished.wait(4)
    await slack.wait_for(lambda: slack.text_in(SLACK_CHANNEL, first.payload["event"]["ts"]) != "")
    shown = slack.text_in(SLACK_CHANNEL, failing.payload["event"]["ts"])
    assert "rejected parley's API key" in shown

    slack.invalid_auth = True  # a token revoked while parley was down
    refused = SlackFrontDoor(engine, secret_stack.configs[id(engine)].door("slack"))
    with pytest.raises(ConfigError) as error:
        await refused.start()
    assert "invalid_auth" in str(error.value)

    surfaces = Surfaces()
    surfaces.add("log lines", logs.getvalue())
    surfaces.add("config error", [str(error.value), error.value.user_message, repr(error.value)])
    surfaces.add_slack(slack)
    surfaces.add_upstream(upstream)
    surfaces.add_files(secret_stack.database.parent)
    assert '"turn_done"' in logs.getvalue() and '"upstream_failed"' in logs.getvalue()
    assert_key_was_used(upstream)
    assert_no_leak(surfaces)


async def test_discord_mention_and_chat_command_show_no_secret(
    secret_stack: Stack, secret_discord: FakeDiscord, upstream: FakeUpstream, capture_logs: Capture
) -> None:
    logs = capture_logs(secret_stack.settings(**SECRET_SETTINGS))
    engine = await secret_stack.engine(**SECRET_SETTINGS)
    await secret_stack.discord_door(engine)
    finished = secret_stack.finished[id(engine)]
    discord = secret_discord

    upstream.script(Script(text=DEFAULT_TEXT), ECHO_401, Script(text=DEFAULT_TEXT), ECHO_401)
    await discord.say(f"{AT_DISCORD} hello")
    await finished.wait(1)
    await discord.say(f"{AT_DISCORD} and now?")
    await finished.wait(2)
    chat = await discord.slash("chat", {"prompt": "hello from a command"})
    await finished.wait(3)
    failing = await discord.slash("chat", {"prompt": "and again?"})
    await finished.wait(4)
    await discord.slash("help")
    await finished.wait(5)
    await discord.until(lambda: "".join(m.content for m in discord.reply(chat)) == DEFAULT_TEXT)
    await discord.until(lambda: "API key" in "".join(m.content for m in discord.reply(failing)))
    assert "API key" in "".join(m.content for m in discord.bot_messages(p.CHANNEL_ID))

    surfaces = Surfaces()
    surfaces.add("log lines", logs.getvalue())
    surfaces.add_discord(discord)
    surfaces.add_upstream(upstream)
    surfaces.add_files(secret_stack.database.parent)
    assert '"discord_ready"' in logs.getvalue() and '"upstream_failed"' in logs.getvalue()
    assert_key_was_used(upstream)
    assert_no_leak(surfaces)


async def test_http_api_json_sse_and_websocket_show_no_secret(
    secret_stack: Stack, upstream: FakeUpstream, capture_logs: Capture
) -> None:
    logs = capture_logs(secret_stack.settings(**SECRET_SETTINGS))
    engine = await secret_stack.engine(**SECRET_SETTINGS)
    server = await secret_stack.http(engine)
    url = f"http://127.0.0.1:{server.port}"
    surfaces = Surfaces()
    upstream.script(Script(text=DEFAULT_TEXT), ECHO_401, Script(text=DEFAULT_TEXT), ECHO_401)

    async with aiohttp.ClientSession() as session:

        async def call(method: str, path: str, **kwargs: Any) -> tuple[int, str]:
            async with session.request(method, url + path, **kwargs) as response:
                body = await response.text()
                surfaces.add(f"HTTP {method} {path} {response.status}", [dict(response.headers)])
                surfaces.add(f"HTTP {method} {path} {response.status}", body)
                return response.status, body

        ask = {"channel": "secrets", "message": "hello"}
        assert (await call("POST", "/v1/chat", json=ask, headers=AUTH))[0] == 200
        status, body = await call("POST", "/v1/chat", json=ask, headers=AUTH)
        assert status == 502 and "API key" in body
        sse = {**AUTH, "Accept": "text/event-stream"}
        status, body = await call("POST", "/v1/chat", json=ask, headers=sse)
        assert status == 200 and "event: done" in body
        status, body = await call("POST", "/v1/chat", json=ask, headers=sse)
        assert status == 200 and "event: error" in body and "API key" in body
        wrong = {"Authorization": f"Bearer {API_TOKEN[:-1]}x"}
        assert (await call("POST", "/v1/chat", json=ask, headers=wrong))[0] == 401
        assert (await call("POST", "/v1/chat", json=ask))[0] == 401
        async with session.ws_connect(url + "/v1/chat/ws", headers=AUTH) as ws:
            await ws.send_json({"channel": "secrets", "message": "over a socket"})
            async for message in ws:
                surfaces.add("HTTP websocket frames", message.data)
                if json.loads(message.data)["event"] in ("done", "error"):
                    break
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            await call("GET", path)

    surfaces.add("log lines", logs.getvalue())
    surfaces.add_upstream(upstream)
    surfaces.add_files(secret_stack.database.parent)
    assert_key_was_used(upstream)
    assert_no_leak(surfaces)


# -- out of process ------------------------------------------------------------------------
def subprocess_env(upstream: FakeUpstream, tmp_path: Path, **more: str) -> dict[str, str]:
    return {
        **ENV,
        "OPENAI_BASE_URL": upstream.base_url,
        "PARLEY_DATABASE": str(tmp_path / "parley.db"),
        "PARLEY_UPSTREAM_RETRIES": "0",
        "PARLEY_LOG_LEVEL": "debug",
        **more,
    }


async def test_parley_console_shows_no_secret(
    upstream: FakeUpstream, tmp_path: Path, processes: list[Spawned]
) -> None:
    upstream.script(Script(text=DEFAULT_TEXT), ECHO_401)
    env = subprocess_env(upstream, tmp_path, PARLEY_LOG_FORMAT="console")
    console = await spawn("console", env, tmp_path, stdin=b"hello\nand now?\n/help\n")
    processes.append(console)
    assert await console.wait() == 0
    out = "".join(console.stdout)
    assert f"parley> {DEFAULT_TEXT}" in out and "rejected parley's API key" in out
    # The terminal chat logs into parley.log beside the database (debug, as asked), not
    # into the chat; that file is among the surfaces scanned below.
    assert "turn_done" in (tmp_path / "parley.log").read_text()

    surfaces = Surfaces()
    surfaces.add("console stdout", out)
    surfaces.add("console stderr", "".join(console.stderr))
    surfaces.add_upstream(upstream)
    surfaces.add_files(tmp_path)
    assert_key_was_used(upstream)
    assert_no_leak(surfaces)


async def test_parley_doctor_failing_checks_show_no_secret(
    upstream: FakeUpstream,
    secret_slack: FakeSlack,
    secret_discord: FakeDiscord,
    tmp_path: Path,
    processes: list[Spawned],
) -> None:
    upstream.script(ECHO_401)
    secret_slack.invalid_auth = True
    env = subprocess_env(
        upstream,
        tmp_path,
        SLACK_API_URL=secret_slack.api_url,
        DISCORD_API_URL=secret_discord.api_url,
    )
    doctor = await spawn("doctor", env, tmp_path)
    processes.append(doctor)
    assert await doctor.wait() == 1
    out = "".join(doctor.stdout)
    assert "[FAIL] model server" in out and "[FAIL] slack: Slack answered invalid_auth" in out
    assert "[ok  ] discord" in out

    surfaces = Surfaces()
    surfaces.add("doctor stdout", out)
    surfaces.add("doctor stderr", "".join(doctor.stderr))
    surfaces.add_files(tmp_path)
    surfaces.add_slack(secret_slack)
    surfaces.add_discord(secret_discord)
    surfaces.add_upstream(upstream)
    assert_key_was_used(upstream)
    assert_no_leak(surfaces)


async def test_parley_run_at_debug_level_shows_no_secret(
    upstream: FakeUpstream,
    secret_slack: FakeSlack,
    secret_discord: FakeDiscord,
    tmp_path: Path,
    processes: list[Spawned],
) -> None:
    slack, discord = secret_slack, secret_discord
    env = subprocess_env(
        upstream,
        tmp_path,
        SLACK_API_URL=slack.api_url,
        DISCORD_API_URL=discord.api_url,
        PARLEY_HTTP_PORT="0",
        PARLEY_FLUSH_INTERVAL="0.05",
        PARLEY_PLACEHOLDER_AFTER="0.05",
        PARLEY_SHUTDOWN_GRACE="5",
    )
    parley = await spawn("run", env, tmp_path)
    processes.append(parley)
    started = await parley.until_logged("parley_started", timeout=30)
    assert started["platforms"] == ["discord", "slack"]
    surfaces = Surfaces()

    upstream.script(Script(text=DEFAULT_TEXT), ECHO_401)
    sent = await slack.mention(SLACK_CHANNEL, ALICE, f"{AT_SLACK} hello")
    thread = sent.payload["event"]["ts"]
    await slack.wait_for(lambda: slack.text_in(SLACK_CHANNEL, thread) == DEFAULT_TEXT)
    await upstream.wait_idle()
    failing = await slack.mention(SLACK_CHANNEL, ALICE, f"{AT_SLACK} and now?")
    thread = failing.payload["event"]["ts"]
    await slack.wait_for(lambda: "API key" in slack.text_in(SLACK_CHANNEL, thread))

    upstream.script(Script(text=DEFAULT_TEXT), Script(text=DEFAULT_TEXT))
    await discord.say(f"{AT_DISCORD} hello")
    await discord.until(
        lambda: "".join(m.content for m in discord.bot_messages(p.CHANNEL_ID)) == DEFAULT_TEXT
    )
    chat = await discord.slash("chat", {"prompt": "hello"}, channel_id=p.OTHER_CHANNEL_ID)
    await discord.until(lambda: "".join(m.content for m in discord.reply(chat)) == DEFAULT_TEXT)

    upstream.script(Script(text=DEFAULT_TEXT))
    api = f"http://127.0.0.1:{started['http_port']}/v1/chat"
    async with aiohttp.ClientSession() as session:
        ask = {"channel": "secrets", "message": "hello"}
        async with session.post(api, json=ask, headers=AUTH) as response:
            assert response.status == 200
            surfaces.add("HTTP response", [dict(response.headers), await response.text()])

    parley.process.send_signal(signal.SIGTERM)
    assert await parley.wait() == 0
    assert any(line["event"] == "turn_done" for line in parley.logged())
    surfaces.add("parley run stdout", "".join(parley.stdout))
    surfaces.add("parley run stderr", "".join(parley.stderr))

    # The same parley, started again after Slack revoked its token.
    slack.invalid_auth = True
    refused = await spawn("run", env, tmp_path)
    processes.append(refused)
    assert await refused.wait() == 2
    assert "invalid_auth" in "".join(refused.stderr)
    surfaces.add("refused parley run stderr", "".join(refused.stderr))

    surfaces.add_slack(slack)
    surfaces.add_discord(discord)
    surfaces.add_upstream(upstream)
    surfaces.add_files(tmp_path)
    assert_key_was_used(upstream)
    assert_no_leak(surfaces)


async def test_parley_run_refused_by_an_echoing_discord_prints_no_secret(
    upstream: FakeUpstream,
    secret_slack: FakeSlack,
    secret_discord: FakeDiscord,
    tmp_path: Path,
    processes: list[Spawned],
) -> None:
    secret_discord.fail("GET", "/users/@me", 403, "Access denied for {authorization}")
    env = subprocess_env(
        upstream,
        tmp_path,
        SLACK_API_URL=secret_slack.api_url,
        DISCORD_API_URL=secret_discord.api_url,
        PARLEY_HTTP_PORT="0",
    )
    refused = await spawn("run", env, tmp_path)
    processes.append(refused)
    assert await refused.wait() == 2
    said = [line for line in refused.stderr if not line.startswith("{")]
    assert len(said) == 1 and "refused the connection (HTTP 403" in said[0]

    surfaces = Surfaces()
    surfaces.add("refused parley run stdout", "".join(refused.stdout))
    surfaces.add("refused parley run stderr", "".join(refused.stderr))
    surfaces.add_files(tmp_path)
    surfaces.add_slack(secret_slack)
    surfaces.add_discord(secret_discord)
    assert_no_leak(surfaces)
