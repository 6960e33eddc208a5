"""Bodies from the network, checked before anything parses them: how deep their nesting
goes, and whether a name in them is printable text.

json.loads recurses once per level: a body of 100,000 `[` raises RecursionError, which
surfaced as a 500 and a traceback (and on /slack/events, before the signature was checked).
"""

from __future__ import annotations

import re

MAX_DEPTH = 64
"""No body parley takes (Slack events, chat requests) nests anywhere near this deep."""

# Control characters, bidirectional overrides and isolates (they reorder what a person reads),
# and surrogate halves (no real character; a database cannot store a lone one).
_UNPRINTABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON `text` nests arrays and objects deeper than `limit` (strings skipped).

    A linear scan, no parsing: it is safe on any input, however hostile."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def printable(name: str, *, longest: int) -> bool:
    """A name a person can read as it is: 1 to `longest` characters, none of them control,
    bidirectional-override or surrogate characters."""
    return 1 <= len(name) <= longest and not _UNPRINTABLE.search(name)
