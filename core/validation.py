"""Check a prompt before it costs an upstream call, and say plainly what to fix."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from core.errors import ParleyError

EMPTY_SENTENCE = "Your message is empty. Write a question or a request and I'll answer it."
UNREADABLE_SENTENCE = (
    "Your message contains characters parley can't read (control characters). "
    "Please remove them and send it again."
)

# C0 and C1 controls except tab and newline, DEL, and lone surrogates (a str may hold them).
# A carriage return is allowed only as part of a Windows line break ("\r\n").
_UNREADABLE = re.compile(r"[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]|\r(?!\n)")
# Whitespace and the invisible characters a paste often brings along (zero-width, BOM).
_EDGES = re.compile(r"\A[\s\u200b-\u200d\u2060\ufeff]+|[\s\u200b-\u200d\u2060\ufeff]+\Z")
# `@name`, as people type mentions (and front doors write the ones they make readable);
# a platform's own syntax for them comes with the turn (Turn.mentions).
_AT_NAMES = re.compile(r"(?:@[\w.\-]+)+")


class InvalidPrompt(ParleyError):
    """A prompt parley will not send upstream; `user_message` says what to change."""


def validate_prompt(text: str, *, max_chars: int, mentions: Iterable[str] = ()) -> str:
    """The prompt with surrounding whitespace removed, or InvalidPrompt saying what's wrong.

    `mentions`: the mentions in `text` as its platform writes them (besides `@names`).
    Rejecting here spares an upstream call that could only fail or answer nonsense.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    if _UNREADABLE.search(text):
        raise InvalidPrompt(UNREADABLE_SENTENCE, detail="control characters")
    cleaned = _EDGES.sub("", text)
    if _is_blank(cleaned):
        raise InvalidPrompt(EMPTY_SENTENCE, detail="empty prompt")
    if len(cleaned) > max_chars:
        raise InvalidPrompt(_too_long(len(cleaned), max_chars), detail="prompt too long")
    if _only_mentions(cleaned, mentions):
        raise InvalidPrompt(_only_mention(cleaned.split()[0]), detail="only mentions")
    return cleaned


def _only_mentions(text: str, mentions: Iterable[str]) -> bool:
    """Nothing but mentions: the platform's own, and typed `@names`."""
    rest = text
    for mention in sorted({m for m in mentions if m}, key=len, reverse=True):
        rest = rest.replace(mention, " ")
    return all(_AT_NAMES.fullmatch(word) for word in rest.split())


def _is_blank(text: str) -> bool:
    """Nothing a reader could see: whitespace and invisible format characters only."""
    return all(char.isspace() or unicodedata.category(char) == "Cf" for char in text)


def _too_long(length: int, max_chars: int) -> str:
    return (
        f"Your message is {length:,} characters long, and I can take at most "
        f"{max_chars:,}. Please shorten it or send it in parts."
    )


def _only_mention(mention: str) -> str:
    return (
        f"Your message has a mention but no question. Write your question after the "
        f"mention, for example: {mention} how do I write a haiku?"
    )
