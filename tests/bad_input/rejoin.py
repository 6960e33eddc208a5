"""Read a split reply back: take out what splitting and rendering added, and rejoin.

A reply too long for one message is shown as several. Each message is a slice of the
model's text, plus — where the slice starts inside a code block — a line reopening the
fence, and — where it ends inside one — a closing fence. `rejoin` undoes exactly that and
nothing more, so a character lost, added or moved anywhere makes it return None.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from core.split import FENCE, FENCE_CLOSE, fence_state

Match = Callable[[str, str, int], int | None]
"""match(body, text, start): where in `text` a slice from `start` that `body` shows ends."""


def exact(body: str, text: str, start: int) -> int | None:
    """The slice is `body` itself."""
    return start + len(body) if text.startswith(body, start) else None


def as_kept(text: str) -> str:
    """The model's `text` as parley shows and remembers it: surrogate halves paired into
    their character, a lone half replaced by U+FFFD (a database cannot store one)."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def rejoin(
    messages: Sequence[str],
    text: str,
    *,
    closes_last: bool = False,
    match: Match = exact,
) -> list[str] | None:
    """The slices of `text` the messages show, in order, if they show all of it; else None.

    `closes_last`: the platform closes a code block the last message ends inside (it
    renders with `core.split.render_open`), as it does for every message that is not last.
    """
    return _rejoin(list(messages), text, 0, closes_last, match)


def _rejoin(
    messages: list[str], text: str, start: int, closes_last: bool, match: Match
) -> list[str] | None:
    if not messages:
        return [] if start == len(text) else None
    message, rest = messages[0], messages[1:]
    body = _without_reopening(message, fence_state(text[:start]) if start else None)
    if body is None:
        return None
    closes = bool(rest) or closes_last
    for cut in (0, len(FENCE), len(FENCE_CLOSE)):
        if cut > len(body) or (cut and not closes):
            continue
        shown, added = body[: len(body) - cut], body[len(body) - cut :]
        end = match(shown, text, start)
        if end is None or (end == start and text):
            continue
        still_open = fence_state(text[:end]) is not None
        wanted = (FENCE if shown.endswith("\n") else FENCE_CLOSE) if still_open and closes else ""
        if added != wanted:
            continue
        later = _rejoin(rest, text, end, closes_last, match)
        if later is not None:
            return [text[start:end], *later]
    return None


def _without_reopening(message: str, fence: str | None) -> str | None:
    """The message without the line that reopens `fence`; None if that line is missing."""
    if fence is None:
        return message
    for line in (fence + "\n", FENCE + "\n"):  # a long fence line is reopened bare
        if message.startswith(line):
            return message[len(line) :]
    return None
