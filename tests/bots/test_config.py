"""Settings: defaults, fixed variable names, each read by the class of its owner (the
engine, the store's choice, the model server, the HTTP server, each front door), and one
clear line for a bad value."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bots.config import load_config, store_for
from bots.discord.settings import DiscordSettings
from bots.slack.settings import SlackSettings
from core.errors import ConfigError
from models.openai import OpenAISettings
from storage import sqlite


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PARLEY_MODEL", "PARLEY_FLUSH_INTERVAL"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_match_the_readme() -> None:
    config = load_config()
    settings = config.engine
    assert settings.model == "gpt-4o-mini"
    assert config.database == "./parley.db"
    assert settings.flush_interval == 1.0
    assert settings.rate_limit_per_minute == 10
    assert settings.rate_limit_burst == 5
    assert settings.max_prompt_chars == 4000
    assert settings.history_turns == 20
    assert settings.max_tokens == 1024
    assert settings.log_level == "info"
    assert settings.log_format == "json"
    assert isinstance(config.model, OpenAISettings) and not config.model.configured
    assert config.http.http_port == 8080
    assert isinstance(config.door("slack"), SlackSettings)
    assert isinstance(config.door("discord"), DiscordSettings)


def test_fixed_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    monkeypatch.setenv("PARLEY_MODEL", "llama3.2")
    monkeypatch.setenv("PARLEY_FLUSH_INTERVAL", "0.5")
    monkeypatch.setenv("PARLEY_LOG_FORMAT", "CONSOLE")
    config = load_config()
    assert config.model.openai_base_url == "http://127.0.0.1:11434/v1"
    assert config.engine.model == "llama3.2"
    assert config.engine.flush_interval == 0.5
    assert config.engine.log_format == "console"
    assert config.model.configured


def test_dotenv_file_is_read(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    with open(".env", "w") as handle:
        handle.write("PARLEY_MODEL=from-dotenv\n")
    assert load_config().engine.model == "from-dotenv"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PARLEY_FLUSH_INTERVAL", "soon", "expected a number"),
        ("PARLEY_FLUSH_INTERVAL", "0", "greater than 0"),
        ("PARLEY_RATE_LIMIT_BURST", "0", "at least 1"),
        ("PARLEY_LOG_FORMAT", "xml", "'json' or 'console'"),
        ("PARLEY_HISTORY_TURNS", "lots", "a whole number"),
        ("PARLEY_HTTP_PORT", "99999", "at most 65535"),
        ("PARLEY_UPSTREAM_RETRIES", "many", "a whole number"),
        ("PARLEY_DISCORD_GUILD_ID", "general", "a whole number"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_config()
    line = caught.value.user_message
    assert name in line and expected in line and "\n" not in line


@pytest.mark.parametrize(
    "database", ["./parley.db", "/var/lib/parley/parley.db", "sqlite:///var/lib/parley.db"]
)
def test_the_form_of_parley_database_picks_the_store(database: str) -> None:
    assert store_for(database) is sqlite
    assert sqlite.path_of("sqlite:///var/lib/parley.db").as_posix() == "var/lib/parley.db"


def test_a_database_url_no_store_takes_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_DATABASE", "mysql://db/parley")
    with pytest.raises(ConfigError) as caught:
        load_config()
    line = caught.value.user_message
    assert "PARLEY_DATABASE" in line and "mysql://db/parley" in line and "\n" not in line


def test_an_override_no_class_has_is_refused() -> None:
    with pytest.raises(TypeError, match="flush_intervall"):
        load_config(_env_file=None, flush_intervall=1)


def test_bad_value_stops_the_command_with_one_line(tmp_path: object) -> None:
    env = {"PATH": "/usr/bin:/bin", "PARLEY_FLUSH_INTERVAL": "soon", "OPENAI_API_KEY": "sk-x"}
    done = subprocess.run(
        [sys.executable, "-m", "bots.main", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=str(tmp_path),
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "parley: invalid setting PARLEY_FLUSH_INTERVAL='soon': expected a number"
    ]


def test_no_upstream_says_what_to_set(tmp_path: object) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bots.main", "console"],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=str(tmp_path),
        input="",
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "OPENAI_API_KEY" in lines[0] and "OPENAI_BASE_URL" in lines[0]
