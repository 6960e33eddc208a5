"""What people type and what models write, at its worst: hypothesis strategies."""

from __future__ import annotations

import itertools

from hypothesis import strategies as st

# Every code point, lone surrogates and controls included: a Python str may hold them all.
any_char = st.characters(exclude_categories=())

EMOJI = [
    "👍",
    "👍🏽",  # skin tone modifier
    "👨\u200d👩\u200d👧\u200d👦",  # ZWJ family
    "🏳️\u200d🌈",  # flag with variation selector and ZWJ
    "🇫🇷",  # regional indicator pair
    "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # tag sequence
    "e\u0301",  # combining acute
    "❤\ufe0f",
]
RIGHT_TO_LEFT = ["שלום עולם", "مرحبا بالعالم", "\u202eevil\u202c", "\u200f", "\u061c"]
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u200e", "\u00ad", "\u034f"]
CONTROLS = ["\x00", "\x07", "\x1b[31m", "\x7f", "\x85", "\x9f", "\x0b", "\x0c", "\r", "\x1f"]
SURROGATES = ["\ud800", "\udfff", "\ud83d", "\ude00", "\ud83d\ude00"]  # the last: a split pair
SPACING = [" ", "\t", "\n", "\r\n", "\n\n", "\u2028", "\u2029", "\u3000", "\xa0"]
SLACK_MARKUP = [
    "<@U123>",
    "<@U0PARLEY>",
    "<@W456|bob>",
    "<!here>",
    "<!channel>",
    "<!everyone>",
    "<!here|@here>",
    "<!subteam^S0TEAM|@team>",
    "<#C1>",
    "<#C1|general>",
    "<https://example.com|a link>",
    "<mailto:a@b.test|mail>",
    "&lt;!here&gt;",
    "&amp;",
    "&#60;@U1&gt;",
    "&#x3C;!channel>",
]
DISCORD_MARKUP = ["<@123>", "<@!123>", "<@&123>", "<#123>", "<:emoji:123>", "<t:0:R>"]
WORD_PINGS = ["@everyone", "@here", "@channel", "@Here", "@parley", "bob@here.com", "@heretic"]
MARKDOWN = [
    "*",
    "**",
    "_",
    "~",
    "`",
    "```",
    "```python\n",
    "\n```\n",
    "    ```",
    "````",
    "*b*",
    "_i_",
    "~s~",
    "# heading\n",
    "| a | b |\n|---|---|\n| 1 | 2 |\n",
    "> quote\n",
    "- item\n",
    "[link](https://x.test)",
    "\\",
    "&",
    "<",
    ">",
]
COMMAND_WORDS = ["reset", "help", "/", "/help", "model", "memory", "system", "/bogus", "/reset"]
SENTENCE_ENDS = [". ", "! ", "? ", "… ", "。"]

tricky = st.sampled_from(
    EMOJI + RIGHT_TO_LEFT + INVISIBLE + SPACING + SLACK_MARKUP + DISCORD_MARKUP + WORD_PINGS
)
unreadable = st.sampled_from(CONTROLS + SURROGATES)
markdown_bits = st.sampled_from(MARKDOWN + SENTENCE_ENDS)
words = st.text(st.characters(categories=("L", "N")), min_size=1, max_size=12)

pasted = st.lists(
    st.one_of(words, tricky, markdown_bits, st.just(" ")), min_size=1, max_size=40
).map("".join)
"""Ordinary-looking text laced with emoji, invisible characters, pings and markup."""

only_mentions = st.lists(
    st.sampled_from([*SLACK_MARKUP[:8], *DISCORD_MARKUP[:3], *WORD_PINGS[:5], "*", "```", "_"]),
    min_size=1,
    max_size=8,
).flatmap(lambda parts: st.sampled_from([" ", "\n", "", "\u200b"]).map(lambda s: s.join(parts)))
"""Messages made of nothing but mentions or markup."""

with_unreadable = st.tuples(pasted, unreadable, pasted).map("".join)


def huge(over: int) -> st.SearchStrategy[str]:
    """Text of more than `over` characters (up to about 25 times more), some of it padding."""
    unit = st.one_of(pasted, st.text(any_char, min_size=1, max_size=30))
    return st.tuples(unit, st.integers(1, 24)).map(lambda t: t[0] * (over // len(t[0]) + 1) * t[1])


def near_limit(limit: int) -> st.SearchStrategy[str]:
    """Visible text within two characters of `limit`, wrapped in whitespace and zero-width."""
    padding = st.text(st.sampled_from(" \n\t\u200b\ufeff"), max_size=4)
    body = st.integers(limit - 2, limit + 2).map(lambda n: "x" * n)
    return st.tuples(padding, body, padding).map("".join)


commands = st.tuples(
    st.sampled_from(
        ["system ", "model ", "memory ", "reset ", "help ", "/", "/model ", "SYSTEM\n"]
    ),
    st.one_of(pasted, with_unreadable, st.text(any_char, max_size=60)),
).map("".join)
"""Command words with arguments nobody should send (an argument is checked like a prompt)."""


def prompts(limit: int) -> st.SearchStrategy[str]:
    """Everything a person might send parley."""
    return st.one_of(
        commands,
        st.text(any_char, max_size=200),
        pasted,
        only_mentions,
        with_unreadable,
        st.sampled_from(COMMAND_WORDS + INVISIBLE + SPACING + [""]),
        huge(limit),
        near_limit(limit),
    )


def model_text(*, long_over: int, max_repeats: int = 6) -> st.SearchStrategy[str]:
    """Everything a model might write: pings, markup, broken fences, blank, very long
    (past `long_over` characters, repeated up to `max_repeats` times)."""
    fence = st.builds(
        lambda lang, body, close: f"```{lang}\n{body}" + ("\n```\n" if close else ""),
        st.sampled_from(["", "python", "a" * 80]),
        pasted,
        st.booleans(),
    )
    piece = st.one_of(pasted, fence, st.sampled_from(EMOJI), st.text(any_char, max_size=50))
    short = st.lists(piece, min_size=1, max_size=12).map("".join)
    blank = st.lists(st.sampled_from(SPACING), min_size=1, max_size=20).map("".join)
    one_long_line = st.sampled_from(["x", "👨\u200d👩\u200d👧", "<!here>", "🇫🇷", "@everyone "]).map(
        lambda unit: unit * (long_over // len(unit) + 3)
    )
    long = st.tuples(short, st.integers(1, max_repeats)).map(
        lambda t: t[0] * (long_over // max(1, len(t[0])) + 1) * t[1]
    )
    return st.one_of(short, blank, one_long_line, long)


def chunks_of(text: str, cuts: list[int]) -> list[str]:
    """`text` cut at `cuts` (taken modulo its length): how an upstream might chunk it."""
    bounds = sorted({0, len(text), *(c % max(1, len(text)) for c in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]
