"""Splitting a reply into platform messages: nothing lost, nothing over the limit."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.split import (
    FENCE_CLOSE,
    MIN_FENCED_LIMIT,
    Piece,
    fence_state,
    render_open,
    split_point,
    split_text,
)

# Every code point, lone surrogates included: a Python str may hold them.
any_char = st.characters(exclude_categories=())
tricky_chars = st.sampled_from(
    [
        "\u200b",  # zero-width space
        "\u200d",  # zero-width joiner
        "\ufeff",
        "\u0301",  # combining acute
        "\ufe0f",  # variation selector
        "\U0001f3fd",  # skin tone
        "\U0001f1eb",  # regional indicator F
        "\U0001f1f7",  # regional indicator R
        "👨‍👩‍👧",
        "שלום",
        "مرحبا",
        "\u202e",
        "\r\n",
        "\n",
        "\n\n",
        " ",
        "```",
        "```python\n",
        "\n```\n",
        ". ",
        "! ",
        "。",
    ]
)
words = st.text(st.characters(categories=("L", "N")), min_size=1, max_size=30)
long_words = st.text(st.sampled_from("abcé"), min_size=100, max_size=3000)
sentences = st.lists(words, min_size=1, max_size=12).map(lambda ws: " ".join(ws) + ". ")
paragraphs = st.lists(sentences, min_size=1, max_size=6).map("".join)
languages = st.sampled_from(["", "python", "js", "c++", "shell"])
code_lines = st.lists(st.text(st.sampled_from("abc =()_\t "), max_size=60), max_size=40)
fences = st.builds(
    lambda lang, lines: f"```{lang}\n" + "".join(line + "\n" for line in lines) + "```",
    languages,
    code_lines,
)
markdown = st.lists(st.one_of(paragraphs, fences, long_words), min_size=1, max_size=12).map(
    "\n\n".join
)
texts = st.one_of(
    st.text(),
    st.text(any_char, max_size=3000),
    st.lists(st.one_of(tricky_chars, words, long_words), max_size=80).map("".join),
    markdown,
)
limits = st.integers(min_value=20, max_value=4000)


def check_invariants(text: str, limit: int, pieces: list[Piece]) -> None:
    assert "".join(p.source for p in pieces) == text
    for piece in pieces:
        assert piece.source
        assert len(piece.text) <= limit
        assert piece.source in piece.text


@settings(max_examples=400, deadline=None)
@given(texts, limits)
def test_sources_rejoin_and_texts_fit(text: str, limit: int) -> None:
    check_invariants(text, limit, split_text(text, limit))


@settings(max_examples=200, deadline=None)
@given(texts, st.integers(min_value=1, max_value=MIN_FENCED_LIMIT + 4))
def test_tiny_limits_keep_the_invariants(text: str, limit: int) -> None:
    check_invariants(text, limit, split_text(text, limit))


@settings(max_examples=300, deadline=None)
@given(markdown, limits)
def test_every_piece_but_the_last_closes_its_fences(text: str, limit: int) -> None:
    pieces = split_text(text, limit)
    for piece in pieces[:-1]:
        assert fence_state(piece.text) is None


@settings(max_examples=300, deadline=None)
@given(texts, texts, limits)
def test_appending_text_never_changes_a_finished_piece(head: str, tail: str, limit: int) -> None:
    before = split_text(head, limit)[:-1]
    assert split_text(head + tail, limit)[: len(before)] == before


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["e\u0301", "👨‍👩‍👧", "👍🏽", "🇫🇷", "a", " "]), max_size=600))
def test_cuts_do_not_split_character_clusters(clusters: list[str]) -> None:
    text = "".join(clusters)
    pieces = split_text(text, 20)
    check_invariants(text, 20, pieces)
    starts = set()
    offset = 0
    for cluster in clusters:
        starts.add(offset)
        offset += len(cluster)
    offset = 0
    for piece in pieces:
        assert offset in starts
        offset += len(piece.source)


@given(texts, limits)
def test_split_point_is_where_the_first_piece_ends(text: str, limit: int) -> None:
    pieces = split_text(text, limit)
    assert split_point(text, limit) == (len(pieces[0].source) if pieces else 0)


def test_empty_text_gives_no_pieces() -> None:
    assert split_text("", 100) == []


def test_text_within_the_limit_is_one_piece() -> None:
    text = "Hello there.\n\nAll of it fits."
    assert split_text(text, len(text)) == [Piece(text, text)]


def test_paragraph_break_beats_line_sentence_and_word() -> None:
    text = "First paragraph here.\n\nSecond line\nthird. Fourth words go on and on"
    pieces = split_text(text, 44)
    assert pieces[0].source == "First paragraph here.\n\n"


def test_line_break_beats_sentence_and_word() -> None:
    text = "A line that runs on.\nNext one. Has sentences and words that go on"
    pieces = split_text(text, 40)
    assert pieces[0].source == "A line that runs on.\n"


def test_sentence_end_beats_word() -> None:
    text = "One sentence is here. Then many words follow without end at all"
    pieces = split_text(text, 40)
    assert pieces[0].source == "One sentence is here. "


def test_space_beats_hard_cut() -> None:
    text = "words only and no sentence ends anywhere at all in this line"
    pieces = split_text(text, 30)
    assert pieces[0].source == "words only and no sentence "


def test_a_boundary_in_the_first_half_gives_way_to_a_weaker_one_later() -> None:
    text = "Short.\n\n" + "word " * 20
    pieces = split_text(text, 40)
    assert pieces[0].source == "Short.\n\n" + "word " * 6


def test_a_huge_word_is_hard_cut() -> None:
    text = "x" * 95
    pieces = split_text(text, 30)
    assert [p.source for p in pieces] == ["x" * 30, "x" * 30, "x" * 30, "x" * 5]


def test_fence_is_closed_and_reopened_with_its_language() -> None:
    code = "".join(f"value_{i} = {i}\n" for i in range(12))
    text = "Here you go:\n\n```python\n" + code + "```\nThat's all."
    pieces = split_text(text, 80)
    assert len(pieces) > 2
    assert pieces[0].text.endswith("\n```")
    for piece in pieces[1:]:
        assert piece.text.startswith("```python\n")
    for piece in pieces[:-1]:
        assert fence_state(piece.text) is None
    assert pieces[-1].text.endswith("```\nThat's all.")


def test_closing_fence_adds_no_blank_line_to_the_code() -> None:
    text = "```js\n" + "let a = 1;\n" * 10 + "```"
    first = split_text(text, 40)[0]
    assert first.source.endswith("\n")
    assert first.text == first.source + "```"


def test_unclosed_fence_at_the_end_is_left_as_written() -> None:
    text = "```\nno end"
    assert split_text(text, 100) == [Piece(text, text)]


def test_very_long_fence_line_reopens_as_a_bare_fence() -> None:
    text = "```" + "l" * 30 + "\n" + "code line\n" * 10 + "```"
    pieces = split_text(text, 40)
    check_invariants(text, 40, pieces)
    assert pieces[1].text.startswith("```\n")


def test_cut_never_splits_a_fence_line() -> None:
    text = "intro line\n" * 3 + "```python\ncode\n```"
    for limit in range(MIN_FENCED_LIMIT, len(text)):
        for piece in split_text(text, limit):
            assert "``" not in piece.source or "```" in piece.source


def test_fence_state_reports_the_open_fence() -> None:
    assert fence_state("plain text") is None
    assert fence_state("a\n```python\nx = 1\n") == "```python"
    assert fence_state("a\n```python\nx = 1\n```\nb") is None
    assert fence_state("inline ``` is not a fence") is None
    assert fence_state("  ```sh\nls") == "```sh"


def test_render_open_closes_an_open_fence() -> None:
    assert render_open("a\n```py\nx = 1") == "a\n```py\nx = 1\n```"
    assert render_open("a\n```py\nx = 1\n") == "a\n```py\nx = 1\n```"
    assert render_open("done\n```py\nx\n```") == "done\n```py\nx\n```"
    assert render_open("plain") == "plain"


@given(texts)
def test_render_open_adds_at_most_the_closing_fence(text: str) -> None:
    shown = render_open(text)
    assert shown.startswith(text)
    assert len(shown) - len(text) <= len(FENCE_CLOSE)
    assert fence_state(shown) is None


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        split_text("abc", 0)


def test_combining_marks_stay_with_their_letter() -> None:
    text = "e\u0301" * 30
    for piece in split_text(text, 21):
        assert unicodedata.category(piece.source[0]) != "Mn"
