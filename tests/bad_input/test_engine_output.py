"""(b, engine) Whatever the model writes, through the real engine, SDK and SQLite: the reply
is shown whole (split messages rejoin to it), and memory keeps exactly that text."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from core.engine import Outcome
from core.model import ConversationKey, Turn
from core.reply import EMPTY_ANSWER
from core.split import is_blank
from tests.bad_input.conftest import Channels, WatchedEngine, examples
from tests.bad_input.known_bugs import tame
from tests.bad_input.rejoin import as_kept, rejoin
from tests.bad_input.strategies import chunks_of, model_text
from tests.fakes.sink import RecordingSink
from tests.fakes.upstream import FakeUpstream, Script

A_SENTENCE = re.compile(r"[A-Z][^.!?]*\w[^.!?]*[.!?]")
SURROGATE = re.compile(r"[\ud800-\udfff]")


async def answer(
    engine: WatchedEngine,
    upstream: FakeUpstream,
    key: ConversationKey,
    script: Script,
    *,
    max_chars: int = 2000,
) -> RecordingSink:
    upstream.script(script)
    sink = RecordingSink(max_chars=max_chars)
    sink.result = await engine.handle(Turn(key, "U0PERSON", "go on"), sink)
    return sink


async def remembered(
    engine: WatchedEngine, upstream: FakeUpstream, key: ConversationKey
) -> list[tuple[str, str]]:
    """What the next turn sends upstream: the conversation as memory kept it."""
    follow = await answer(engine, upstream, key, Script(text="ok"))
    assert follow.result.outcome is Outcome.COMPLETE
    return [(m["role"], m["content"]) for m in upstream.requests[-1]["body"]["messages"]]


@examples(300)
@given(
    raw=model_text(long_over=400, max_repeats=3),
    cuts=st.lists(st.integers(0, 100_000), max_size=20),
    max_chars=st.sampled_from([120, 2000]),
)
@example(raw="", cuts=[], max_chars=2000)
@example(raw="x\x00y\x1b[31m", cuts=[1], max_chars=120)
@example(raw="lone \ud800 half, pair \ud83d\ude00 end \ud83d", cuts=[19], max_chars=120)
@example(raw="<!here> @everyone <@U1> <@&2>" * 30, cuts=[7, 300], max_chars=120)
async def test_any_model_output_is_shown_whole_and_remembered_exactly(
    engine: WatchedEngine,
    upstream: FakeUpstream,
    channels: Channels,
    raw: str,
    cuts: list[int],
    max_chars: int,
) -> None:
    sent = tame(raw, max_chars)
    key = ConversationKey("test", "w1", channels())
    sink = await answer(
        engine, upstream, key, Script(chunks=chunks_of(sent, cuts)), max_chars=max_chars
    )
    text = as_kept(sent)  # what the person is shown and memory keeps
    result = sink.result
    assert result.outcome is Outcome.COMPLETE, result
    assert result.reply == text
    assert not sink.notices
    if not is_blank(text):
        assert result.note == ""
        pieces = rejoin(sink.messages, text)
        assert pieces is not None, f"the messages do not rejoin to the reply: {sink.messages!r}"
    else:
        assert result.note == EMPTY_ANSWER
        assert sink.shown == EMPTY_ANSWER
    history = await remembered(engine, upstream, key)
    said = [("assistant", text)] if text else []  # an empty answer is not context
    assert history[-2 - len(said) :] == [("user", "go on"), *said, ("user", "go on")]


@pytest.mark.parametrize("blank", ["\n\n", " \t \n", "\u200b", "\u3000\n"])
async def test_a_blank_answer_is_not_left_as_a_placeholder(
    engine: WatchedEngine, upstream: FakeUpstream, channels: Channels, blank: str
) -> None:
    sink = await answer(
        engine, upstream, ConversationKey("test", "w1", channels()), Script(chunks=[blank])
    )
    assert A_SENTENCE.search(sink.shown), f"the person sees only {sink.shown!r}"


@pytest.mark.parametrize("chunks", [["Here: \ud83d", "\ude00 done"], ["broken \ud800 byte"]])
async def test_a_surrogate_pair_split_across_chunks_is_remembered(
    engine: WatchedEngine, upstream: FakeUpstream, channels: Channels, chunks: list[str]
) -> None:
    key = ConversationKey("test", "w1", channels())
    sink = await answer(engine, upstream, key, Script(chunks=chunks))
    assert sink.result.note == ""
    history = await remembered(engine, upstream, key)
    assert history[-3][0] == "user" and history[-2][0] == "assistant"
    assert not SURROGATE.search(history[-2][1])
