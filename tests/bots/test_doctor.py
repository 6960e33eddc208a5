"""`parley doctor` against the fakes: all green, then one clear line per broken service."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bots.config import Config, load_config
from bots.doctor import run_doctor
from bots.main import _front_doors, close_engine, open_engine
from core.errors import ConfigError
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_payloads import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET
from tests.fakes.upstream import FakeUpstream, Script


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


def settings_for(
    upstream: FakeUpstream, slack: FakeSlack, discord: FakeDiscord, tmp: Path, **extra: Any
) -> Config:
    values: dict[str, Any] = {
        "openai_base_url": upstream.base_url,
        "database": str(tmp / "parley.db"),
        "slack_bot_token": BOT_TOKEN,
        "slack_app_token": APP_TOKEN,
        "slack_api_url": slack.api_url,
        "discord_bot_token": discord.token,
        "discord_api_url": discord.api_url,
        **extra,
    }
    return load_config(_env_file=None, **values)


async def doctor(settings: Config) -> tuple[int, str]:
    out = io.StringIO()
    code = await run_doctor(settings, out)
    return code, out.getvalue()


async def test_everything_configured_and_reachable_passes(
    upstream: FakeUpstream, slack: FakeSlack, discord_fake: FakeDiscord, tmp_path: Path
) -> None:
    code, report = await doctor(settings_for(upstream, slack, discord_fake, tmp_path))
    assert code == 0, report
    assert report.count("[ok  ]") == 5 and "All good." in report
    assert upstream.requests[-1]["body"]["max_tokens"] == 1  # a one-token completion


async def test_a_bad_slack_token_fails_with_a_fix(
    upstream: FakeUpstream, slack: FakeSlack, discord_fake: FakeDiscord, tmp_path: Path
) -> None:
    settings = settings_for(
        upstream, slack, discord_fake, tmp_path, slack_bot_token="xoxb-wrong-token"
    )
    code, report = await doctor(settings)
    assert code == 1
    [line] = [line for line in report.splitlines() if "[FAIL]" in line]
    assert "slack: Slack answered invalid_auth" in line
    assert "fix: check SLACK_BOT_TOKEN" in report
    assert "xoxb-wrong-token" not in report


@pytest.mark.parametrize(
    ("script", "says", "fix"),
    [
        (Script(status=401), "HTTP 401", "check OPENAI_API_KEY"),
        (Script(status=404), "HTTP 404", "set PARLEY_MODEL"),
    ],
)
async def test_a_failing_model_server_fails_with_a_fix(
    upstream: FakeUpstream,
    slack: FakeSlack,
    discord_fake: FakeDiscord,
    tmp_path: Path,
    script: Script,
    says: str,
    fix: str,
) -> None:
    upstream.script(script)
    code, report = await doctor(settings_for(upstream, slack, discord_fake, tmp_path))
    assert code == 1 and says in report and fix in report


async def test_a_bad_discord_token_and_unset_platforms(
    upstream: FakeUpstream, slack: FakeSlack, discord_fake: FakeDiscord, tmp_path: Path
) -> None:
    settings = settings_for(
        upstream,
        slack,
        discord_fake,
        tmp_path,
        discord_bot_token="nope",
        slack_bot_token=None,
        slack_app_token=None,
    )
    code, report = await doctor(settings)
    assert code == 1
    assert "[skip] slack: not configured" in report
    assert "[FAIL] discord: Discord rejected the token (401)" in report
    assert "Reset Token" in report


SLACK_COMBINATIONS = [
    {"slack_bot_token": BOT_TOKEN},
    {"slack_bot_token": BOT_TOKEN, "slack_app_token": APP_TOKEN},
    {"slack_bot_token": BOT_TOKEN, "slack_signing_secret": SIGNING_SECRET},
    {"slack_bot_token": BOT_TOKEN, "slack_app_token": APP_TOKEN, "slack_signing_secret": "s"},
    {"slack_app_token": APP_TOKEN},
    {"slack_signing_secret": SIGNING_SECRET},
    {},
]


@pytest.mark.parametrize("tokens", SLACK_COMBINATIONS, ids=lambda t: "+".join(t) or "none")
async def test_doctor_and_run_agree_on_every_slack_combination(
    upstream: FakeUpstream,
    slack: FakeSlack,
    discord_fake: FakeDiscord,
    tmp_path: Path,
    tokens: dict[str, str],
) -> None:
    unset = {"slack_bot_token": None, "slack_app_token": None, "slack_signing_secret": None}
    settings = settings_for(upstream, slack, discord_fake, tmp_path, **{**unset, **tokens})
    _, report = await doctor(settings)
    [line] = [line for line in report.splitlines() if "] slack: " in line]
    engine = await open_engine(settings)
    try:
        doors = _front_doors(engine, settings)
    except ConfigError as refused:  # `parley run` stops here, with this sentence
        assert "[FAIL]" in line and refused.user_message.removeprefix("parley: ") in line
    else:
        if "slack" in doors:
            door: Any = doors["slack"]
            assert "[ok  ]" in line
            assert ("Socket Mode" if door.mode == "socket" else "HTTP Events API") in line
        else:
            assert "[skip]" in line
    finally:
        await close_engine(engine)


async def test_doctor_creates_no_file(
    upstream: FakeUpstream, slack: FakeSlack, discord_fake: FakeDiscord, tmp_path: Path
) -> None:
    code, report = await doctor(settings_for(upstream, slack, discord_fake, tmp_path))
    assert code == 0 and "does not exist yet; parley will create it" in report
    assert os.listdir(tmp_path) == []
