"""Command words: recognised the same way on every front door, prompts left alone."""

from __future__ import annotations

import pytest

from core.commands import HELP, Command, parse_command, run_command
from core.model import ChannelSettings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/reset", Command("reset")),
        ("reset", Command("reset")),
        ("  Help ", Command("help")),
        ("/model", Command("model")),
        ("model llama3.2:8b", Command("model", "llama3.2:8b")),
        ("/system Be terse.", Command("system", "Be terse.")),
        ("memory off", Command("memory", "off")),
        ("/memory", Command("memory")),
        ("/frobnicate now", Command("unknown", "frobnicate")),
        ("/", Command("help")),
    ],
)
def test_commands_are_recognised(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "help me write a haiku",
        "reset my password please",
        "model the economy as a graph",
        "memory leaks in C: how to find them?",
        "what is a /reset endpoint?",
        "",
    ],
)
def test_prompts_that_start_with_a_command_word_stay_prompts(text: str) -> None:
    assert parse_command(text) is None


def _run(text: str, current: ChannelSettings | None = None) -> tuple[str, ChannelSettings]:
    command = parse_command(text)
    assert command is not None
    result = run_command(
        command,
        current or ChannelSettings(),
        default_model="gpt-4o-mini",
        models=["gpt-4o-mini", "gpt-4o"],
        default_system="Be helpful.",
    )
    return result.reply, result.settings


def test_model_shows_and_switches_within_the_configured_list() -> None:
    reply, settings = _run("/model")
    assert "gpt-4o-mini" in reply and "gpt-4o" in reply
    reply, settings = _run("/model gpt-4o")
    assert settings.model == "gpt-4o" and "now uses `gpt-4o`" in reply
    reply, unchanged = _run("/model nonsense-9000", settings)
    assert unchanged == settings and "the models here are" in reply


def test_system_show_set_and_restore() -> None:
    reply, settings = _run("/system")
    assert "Be helpful." in reply and "default" in reply
    _, settings = _run("/system Answer in French.")
    assert settings.system_prompt == "Answer in French."
    reply, _ = _run("/system", settings)
    assert "Answer in French." in reply and "custom" in reply
    _, restored = _run("/system default", settings)
    assert restored.system_prompt is None


def test_memory_switch() -> None:
    reply, settings = _run("memory off")
    assert settings.memory is False and "off" in reply
    reply, settings = _run("memory", settings)
    assert "Memory is off" in reply
    _, settings = _run("memory on", settings)
    assert settings.memory is True


def test_unknown_command_answers_with_help() -> None:
    reply, _ = _run("/dance")
    assert "`dance`" in reply and HELP in reply
