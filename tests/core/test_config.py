"""Settings: defaults, fixed variable names, and one clear line for a bad value."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.config import load_settings
from core.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PARLEY_MODEL", "PARLEY_FLUSH_INTERVAL"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_match_the_readme() -> None:
    settings = load_settings()
    assert settings.model == "gpt-4o-mini"
    assert settings.database == "./parley.db"
    assert settings.flush_interval == 1.0
    assert settings.rate_limit_per_minute == 10
    assert settings.rate_limit_burst == 5
    assert settings.max_prompt_chars == 4000
    assert settings.history_turns == 20
    assert settings.max_tokens == 1024
    assert settings.log_level == "info"
    assert settings.log_format == "json"
    assert not settings.upstream_configured


def test_fixed_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    monkeypatch.setenv("PARLEY_MODEL", "llama3.2")
    monkeypatch.setenv("PARLEY_FLUSH_INTERVAL", "0.5")
    monkeypatch.setenv("PARLEY_LOG_FORMAT", "CONSOLE")
    settings = load_settings()
    assert settings.openai_base_url == "http://127.0.0.1:11434/v1"
    assert settings.model == "llama3.2"
    assert settings.flush_interval == 0.5
    assert settings.log_format == "console"
    assert settings.upstream_configured


def test_dotenv_file_is_read(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    with open(".env", "w") as handle:
        handle.write("PARLEY_MODEL=from-dotenv\n")
    assert load_settings().model == "from-dotenv"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PARLEY_FLUSH_INTERVAL", "soon", "expected a number"),
        ("PARLEY_FLUSH_INTERVAL", "0", "greater than 0"),
        ("PARLEY_RATE_LIMIT_BURST", "0", "at least 1"),
        ("PARLEY_LOG_FORMAT", "xml", "'json' or 'console'"),
        ("PARLEY_HISTORY_TURNS", "lots", "a whole number"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    line = caught.value.user_message
    assert name in line and expected in line and "\n" not in line


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
