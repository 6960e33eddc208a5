"""(b, core) Whatever the model writes, however it is chunked: every message fits, and the
messages rejoin to exactly the model's text."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from core.split import is_blank, render_open
from core.streamer import FENCE_RESERVE, PLACEHOLDER, Streamer
from tests.bad_input.conftest import examples
from tests.bad_input.known_bugs import tame
from tests.bad_input.rejoin import as_kept, rejoin
from tests.bad_input.strategies import chunks_of, model_text
from tests.fakes.sink import RecordingSink

FINISH_WITHIN = 5.0  # seconds: a reply that has not ended by then never will
MAX_CALLS = 2000  # far more posts and edits than any text here needs


def chunked(text: str, cuts: list[int], yields: list[int]) -> list[tuple[str, int]]:
    """`text` cut at `cuts`, each chunk with how many times the event loop may run before
    the next one is fed (so the sender runs between chunks, or not)."""
    pieces = chunks_of(text, cuts)
    return [(p, yields[i % len(yields)] if yields else 0) for i, p in enumerate(pieces)]


async def stream(text: str, max_chars: int, cuts: list[int], yields: list[int]) -> RecordingSink:
    """Stream `text` through a Streamer onto a RecordingSink whose every call yields."""
    sink = RecordingSink(max_chars=max_chars, call_delay=1e-6)
    streamer = Streamer(sink, flush_interval=0.002, placeholder_after=0.0)
    streamer.start()
    for chunk, turns in chunked(text, cuts, yields):
        streamer.feed(chunk)
        for _ in range(turns):
            await asyncio.sleep(0)
    async with asyncio.timeout(FINISH_WITHIN):
        await streamer.finish()
    assert streamer.text == as_kept(text)
    return sink


def check_fits_and_rejoins(sink: RecordingSink, text: str, max_chars: int) -> None:
    assert len(sink.calls) < MAX_CALLS, "the streamer flooded the platform"
    for call in sink.calls:  # every post and edit, as a platform renders it
        assert len(render_open(call.text)) <= max_chars
        assert len(call.text) + FENCE_RESERVE <= max_chars
    if not is_blank(text):
        # A trailing piece of only whitespace is not posted (platforms refuse blank messages):
        # the messages rejoin to the text, or to the text less that whitespace tail.
        kept = len(text.rstrip())
        shown = (rejoin(sink.messages, text[:end]) for end in range(len(text), kept - 1, -1))
        pieces = next((p for p in shown if p is not None), None)
        assert pieces is not None, f"the messages do not rejoin to the text: {sink.messages!r}"
        assert text.startswith("".join(pieces)) and is_blank(text[len("".join(pieces)) :])
    else:  # nothing to show: no blank message goes out (the engine adds its note)
        assert all(is_blank(m) is False for m in sink.messages if m != PLACEHOLDER)


@examples(600)
@given(
    raw=model_text(long_over=600),
    max_chars=st.integers(40, 500),
    cuts=st.lists(st.integers(0, 100_000), max_size=30),
    yields=st.lists(st.integers(0, 3), max_size=30),
)
@example(raw="```python\n" + "x = 1\n" * 40, max_chars=40, cuts=[7, 19], yields=[1])
@example(raw="👨\u200d👩\u200d👧" * 60, max_chars=41, cuts=[1, 2, 3], yields=[0])
@example(raw="a" + " " * 300 + "b", max_chars=40, cuts=[], yields=[])
@example(raw="\n\n \n", max_chars=40, cuts=[1], yields=[1])
@example(raw="lone \ud800 half, pair \ud83d\ude00 end \ud83d", max_chars=40, cuts=[19], yields=[1])
async def test_streamed_messages_fit_and_rejoin_to_the_text(
    raw: str, max_chars: int, cuts: list[int], yields: list[int]
) -> None:
    text = tame(raw, max_chars)
    sink = await stream(text, max_chars, cuts, yields)
    check_fits_and_rejoins(sink, as_kept(text), max_chars)


# -- bugs found here ------------------------------------------------------------------------
CODE_THEN_LONG_FENCE_LINE = ("```\n", "code\n" * 7 + "```" + "b" * 36)
INLINE_FENCE_AT_A_CUT = ("Use ", "w" * 21 + " ```code``` and some more words after it.")


async def test_a_fence_line_longer_than_a_message_after_a_cut_code_block_ends() -> None:
    await check_streamed_in_two(*CODE_THEN_LONG_FENCE_LINE, max_chars=40)


async def test_inline_backticks_at_the_start_of_a_continuation_are_not_a_fence() -> None:
    await check_streamed_in_two(*INLINE_FENCE_AT_A_CUT, max_chars=40)


async def test_a_lone_surrogate_half_is_shown_as_memory_keeps_it() -> None:
    # Memory keeps U+FFFD in its place (Streamer.text); so do the messages.
    sink = await stream("lone \ud800 half", 40, [], [])
    check_fits_and_rejoins(sink, "lone \ufffd half", 40)


@pytest.mark.xfail(strict=True, reason="known bug: a blank piece is edited into the placeholder")
async def test_a_blank_run_longer_than_a_message_is_not_shown_as_a_blank_message() -> None:
    sink = await streamed_in_two(" ", " " * 37 + "x", max_chars=40)
    assert not any(is_blank(m) for m in sink.messages), sink.messages


@pytest.mark.xfail(strict=True, reason="known bug: a trailing blank piece leaves a placeholder")
async def test_a_reply_that_ends_in_a_blank_piece_leaves_no_placeholder() -> None:
    # The text fills a message but for its last blank line: a "…" message is posted for that
    # line once the sender has run, and stays after the reply has ended.
    sink = await stream("x" * 35 + " \n", 40, [], [1])
    assert PLACEHOLDER not in sink.messages, sink.messages


async def check_streamed_in_two(first: str, rest: str, *, max_chars: int) -> None:
    """The first chunk is on screen before the rest arrives, as when a model streams."""
    sink = await streamed_in_two(first, rest, max_chars=max_chars)
    check_fits_and_rejoins(sink, first + rest, max_chars)


async def streamed_in_two(first: str, rest: str, *, max_chars: int) -> RecordingSink:
    """`first` fed and on screen (its first call made) before `rest` is fed."""
    sink = RecordingSink(max_chars=max_chars, call_delay=1e-6)
    streamer = Streamer(sink, flush_interval=0.002, placeholder_after=0.0)
    streamer.start()
    streamer.feed(first)
    await sink.until(lambda: len(sink.calls) == 1)
    streamer.feed(rest)
    async with asyncio.timeout(1.0):
        await streamer.finish()
    return sink
