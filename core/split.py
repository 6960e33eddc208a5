"""Split a long reply into platform messages without losing or adding a character.

Cuts prefer the strongest boundary that leaves the message at least half full: a paragraph
break, then a line break, then a sentence end, then a space, and only then a hard cut (never
between a character and the combining mark, joiner or selector that belongs to it). A cut
inside a ``` code fence closes the fence in the earlier message and reopens it, with the same
language, in the next, so each message renders on its own.

`split_text` is prefix-stable: once a piece is not the last one, appending more text never
changes it. A streamer may therefore re-split the whole buffer after every chunk.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

FENCE = "```"
FENCE_CLOSE = "\n" + FENCE
"""The most `render_open` (and a split piece) appends: leave this much room for it."""

MIN_FENCED_LIMIT = 16
"""Below this limit the fence markers would crowd out the text, so pieces stay undecorated."""

# `^` with MULTILINE matches only at real line starts, even with a `pos` argument, so a scan
# that starts mid-line never mistakes a line's tail for a fence line.
_FENCE_LINE = re.compile(r"^ *```[^\n]*", re.MULTILINE)

# Strongest first. Each match ends where the cut goes, so whitespace stays with the earlier
# piece; the line breaks stop at the newline to keep the next line's indentation.
_BOUNDARIES = (
    re.compile(r"\n(?:[^\S\n]*\n)+"),  # paragraph: one or more blank lines
    re.compile(r"\n"),  # line
    re.compile(r"[.!?…][\"'”’»)\]]*[^\S\n]+|[。！？]+"),  # sentence
    re.compile(r"\s+"),  # word
)

_ZWJ = "\u200d"


@dataclass(frozen=True)
class Piece:
    """One platform message: `source` is the exact slice of the reply, `text` what to show.

    `text` is `source` plus any fence reopened at its start and closed at its end.
    """

    source: str
    text: str


_INVISIBLE = re.compile(r"[\s\u200b-\u200d\u2060\ufeff]*")


def is_blank(text: str) -> bool:
    """Nothing a person could see: whitespace and zero-width characters only."""
    return _INVISIBLE.fullmatch(text) is not None


def split_text(text: str, limit: int) -> list[Piece]:
    """Cut `text` into pieces whose `.text` fits `limit` and whose sources rejoin to `text`."""
    _check_limit(limit)
    pieces: list[Piece] = []
    start, fence = 0, None
    while start < len(text):
        piece, fence = _next_piece(text, start, fence, limit)
        pieces.append(piece)
        start += len(piece.source)
    return pieces


def split_point(text: str, limit: int) -> int:
    """Where the first piece of `split_text(text, limit)` ends (`len(text)` when it all fits)."""
    _check_limit(limit)
    if not text:
        return 0
    return len(_next_piece(text, 0, None, limit)[0].source)


def fence_state(text: str) -> str | None:
    """The opening fence line (e.g. "```python") if `text` ends inside a code fence, else None.

    A streamed message can end mid-block; knowing that lets it be shown with a closing fence.
    """
    return _scan(text, 0, len(text), None)


def render_open(text: str) -> str:
    """`text`, with the code fence it ends inside closed, so a partial message renders cleanly.

    Adds at most `len(FENCE_CLOSE)` characters.
    """
    if fence_state(text) is None:
        return text
    return text + _closing(text)


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")


def _next_piece(text: str, start: int, fence: str | None, limit: int) -> tuple[Piece, str | None]:
    """The piece starting at `start` inside `fence`, and the fence still open where it ends."""
    if limit < MIN_FENCED_LIMIT:
        end = _cut(text, start, limit)
        return Piece(text[start:end], text[start:end]), None
    prefix = _reopening(fence, limit)
    budget = limit - len(prefix)
    end = _cut(text, start, budget)
    after = _scan(text, start, end, fence)
    if after is not None and end < len(text):
        # The cut lands inside a fence: make room for closing it and cut again.
        end = _cut(text, start, budget - len(FENCE_CLOSE))
        after = _scan(text, start, end, fence)
    source = text[start:end]
    # The end of the reply is not a cut: an unclosed fence there is the reply's own.
    suffix = _closing(source) if after is not None and end < len(text) else ""
    return Piece(source, prefix + source + suffix), after


def _reopening(fence: str | None, limit: int) -> str:
    """The line that reopens `fence` at the top of a piece; bare ``` if the line is too long."""
    if fence is None:
        return ""
    if len(fence) + 1 + len(FENCE_CLOSE) <= limit // 2:
        return fence + "\n"
    return FENCE + "\n"


def _closing(text: str) -> str:
    """What closes a fence after `text`, without adding a blank line to the code block."""
    return FENCE if text.endswith("\n") else FENCE_CLOSE


def _scan(text: str, start: int, end: int, fence: str | None) -> str | None:
    """The fence open at `end`, given `fence` open at `start`: each fence line toggles it."""
    for match in _FENCE_LINE.finditer(text, start, end):
        fence = match.group().strip() if fence is None else None
    return fence


def _cut(text: str, start: int, budget: int) -> int:
    """Where the piece starting at `start` with room for `budget` characters should end."""
    hi = start + budget
    if len(text) <= hi:
        return len(text)
    lo = start + max(1, budget // 2)
    end = hi
    for boundary in _BOUNDARIES:
        found = _last_end(boundary, text, start, lo, hi)
        if found is not None:
            end = found
            break
    return _clear_of_fence_line(text, start, _settle(text, start, end))


def _last_end(boundary: re.Pattern[str], text: str, start: int, lo: int, hi: int) -> int | None:
    """The last end of a `boundary` match that falls within [lo, hi], if any."""
    found = None
    for match in boundary.finditer(text, start, hi):
        if match.end() >= lo:
            found = match.end()
    return found


def _settle(text: str, start: int, end: int) -> int:
    """Move a cut back to the nearest place that does not split a character cluster."""
    cut = end
    while cut > start and not _can_cut(text, cut):
        cut -= 1
    return cut if cut > start else end


def _can_cut(text: str, at: int) -> bool:
    """Whether text[:at] and text[at:] are separate characters as a reader sees them."""
    before, after = text[at - 1], text[at]
    if _clings(after) or before == _ZWJ or (before, after) == ("\r", "\n"):
        return False
    if "\ud800" <= before <= "\udbff" and "\udc00" <= after <= "\udfff":
        return False  # a surrogate pair smuggled into a str
    if _is_regional(before) and _is_regional(after):
        return _regional_run(text, at) % 2 == 0  # flags are pairs of regional indicators
    return True


def _clings(char: str) -> bool:
    """Whether `char` belongs to the character before it (mark, joiner, selector, modifier)."""
    code = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Mc", "Me")
        or char == _ZWJ
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0x1F3FB <= code <= 0x1F3FF  # skin tone modifiers
        or 0xE0020 <= code <= 0xE007F  # emoji tag sequences
        or 0xE0100 <= code <= 0xE01EF  # variation selectors supplement
    )


def _is_regional(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _regional_run(text: str, at: int) -> int:
    """How many regional indicators come right before `at`."""
    count = 0
    while at - count > 0 and _is_regional(text[at - count - 1]):
        count += 1
    return count


def _clear_of_fence_line(text: str, start: int, end: int) -> int:
    """Move a cut that would split a (possible) fence line back to the start of that line.

    A fence line is recognised only where it starts, so a split one would be misread.
    """
    line_start = text.rfind("\n", start, end) + 1
    if line_start <= start or line_start == end:
        return end
    head = text[line_start:end].lstrip(" ")
    if head.startswith(FENCE) or FENCE.startswith(head):
        return line_start
    return end
