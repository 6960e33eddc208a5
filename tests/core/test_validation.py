"""Prompt validation: a clear sentence for each thing a user must fix, no upstream call."""

from __future__ import annotations

import pytest

from core.errors import ParleyError
from core.validation import InvalidPrompt, validate_prompt


def refusal(text: str, max_chars: int = 1000) -> str:
    with pytest.raises(InvalidPrompt) as refused:
        validate_prompt(text, max_chars=max_chars)
    assert isinstance(refused.value, ParleyError)
    return refused.value.user_message


def test_valid_prompt_passes_unchanged_except_the_strip() -> None:
    body = "Summarise this:\n\tשלום עולם 👋🏽\nمرحبا — café\r\n\n  indented line  "
    assert validate_prompt(f"  \n{body}\n\t ", max_chars=1000) == body.rstrip()


def test_inner_zero_width_characters_are_kept() -> None:
    text = "family: 👨\u200d👩\u200d👧 and a\u200bword"
    assert validate_prompt(text, max_chars=100) == text


def test_leading_bom_and_zero_width_space_are_stripped() -> None:
    assert validate_prompt("\ufeff\u200b hello \u200b", max_chars=100) == "hello"


@pytest.mark.parametrize("text", ["", "   ", "\n\t\n", "\u200b", "\ufeff \u200b\u2060", "\u200e"])
def test_empty_or_invisible_prompt_is_refused(text: str) -> None:
    assert "empty" in refusal(text)


def test_too_long_prompt_says_the_limit_and_the_length() -> None:
    sentence = refusal("x" * 4001, max_chars=4000)
    assert "4,001" in sentence
    assert "4,000" in sentence


def test_length_is_measured_after_the_strip() -> None:
    assert validate_prompt("  " + "x" * 10 + "  ", max_chars=10) == "x" * 10


@pytest.mark.parametrize(
    "char", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\x9f", "\x0b", "\x0c", "\r", "\ud800"]
)
def test_control_characters_and_lone_surrogates_are_refused(char: str) -> None:
    assert "can't read" in refusal(f"hello {char} there")


def test_control_characters_at_the_edges_are_not_silently_stripped() -> None:
    assert "can't read" in refusal("hello\x1f")


@pytest.mark.parametrize("text", ["@parley", "  @parley  ", "@parley @bob.smith\n@x-y"])
def test_only_a_mention_asks_for_a_question(text: str) -> None:
    sentence = refusal(text)
    assert "question after the" in sentence
    assert text.split()[0] in sentence


@pytest.mark.parametrize("text", ["@parley hi", "@parley ?", "email me@example.com", "@"])
def test_a_mention_with_anything_else_is_a_prompt(text: str) -> None:
    assert validate_prompt(text, max_chars=100) == text


def test_max_chars_must_be_positive() -> None:
    with pytest.raises(ValueError):
        validate_prompt("hi", max_chars=0)
