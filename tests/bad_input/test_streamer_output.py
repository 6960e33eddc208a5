"""(b, core) Whatever the model writes, however it is chunked: every message fits, and the
messages rejoin to exactly the model's text."""

from __future__ import annotations

import asyncio
import itertools

from hypothesis import example, given
from hypothesis import strategies as st

from core.split import render_open
from core.streamer import FENCE_RESERVE, Streamer
from tests.bad_input.conftest import examples
from tests.bad_input.rejoin import rejoin
from tests.bad_input.strategies import model_text
from tests.fakes.sink import RecordingSink

texts = model_text(long_over=600)


def chunked(text: str, cuts: list[int], yields: list[int]) -> list[tuple[str, int]]:
    """`text` cut at `cuts` (wrapped into range), each chunk with how many times the event
    loop may run before the next one is fed."""
    bounds = sorted({0, len(text), *(c % max(1, len(text)) for c in cuts)})
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    return [(p, yields[i % len(yields)] if yields else 0) for i, p in enumerate(pieces)]


@examples(120)
@given(
    text=texts,
    max_chars=st.integers(40, 500),
    cuts=st.lists(st.integers(0, 100_000), max_size=30),
    yields=st.lists(st.integers(0, 3), max_size=30),
)
@example(text="```python\n" + "x = 1\n" * 40, max_chars=40, cuts=[7, 19], yields=[1])
@example(text="👨\u200d👩\u200d👧" * 60, max_chars=41, cuts=[1, 2, 3], yields=[0])
@example(text="a" + " " * 300 + "b", max_chars=40, cuts=[], yields=[])
async def test_streamed_messages_fit_and_rejoin_to_the_text(
    text: str, max_chars: int, cuts: list[int], yields: list[int]
) -> None:
    sink = RecordingSink(max_chars=max_chars)
    streamer = Streamer(sink, flush_interval=0.002, placeholder_after=0.0)
    streamer.start()
    for chunk, turns in chunked(text, cuts, yields):
        streamer.feed(chunk)
        for _ in range(turns):
            await asyncio.sleep(0)  # let the sender run between chunks, or not
    await streamer.finish()

    for call in sink.calls:  # every post and edit, as a platform would render it
        assert len(render_open(call.text)) <= max_chars
        assert len(call.text) + FENCE_RESERVE <= max_chars
    assert streamer.text == text
    pieces = rejoin(sink.messages, text)
    assert pieces is not None, f"the messages do not rejoin to the text: {sink.messages!r}"
    assert "".join(pieces) == text
