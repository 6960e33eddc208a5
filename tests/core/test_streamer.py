"""Streamer: what a user sees while a reply streams onto a chat platform.

Text shows up at once, grows at a calm cadence, ends complete and on time, survives the
platform saying "slow down" or failing an edit, splits cleanly past the message limit, and
50 replies sharing one small edit budget all finish without a single 429.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence

import pytest

from core.budget import EditBudget
from core.split import FENCE, FENCE_CLOSE, fence_state
from core.streamer import FENCE_RESERVE, PLACEHOLDER, Streamer
from tests.fakes.sink import RecordingSink, SharedLimit
from tests.support.engine import eventually

FLUSH = 0.1
SLACK = 0.01  # timer and clock granularity
SENTENCE = "The quick brown fox jumps over the lazy dog. "


def make(sink: RecordingSink, *, flush: float = FLUSH, placeholder_after: float = 0.5) -> Streamer:
    return Streamer(sink, flush_interval=flush, placeholder_after=placeholder_after)


def chunked(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


async def stream(streamer: Streamer, chunks: Sequence[str], gap: float = 0.01) -> None:
    """Feed `chunks` the way a model emits tokens: one every `gap` seconds."""
    for chunk in chunks:
        streamer.feed(chunk)
        await asyncio.sleep(gap)


def sources(messages: Sequence[str], text: str) -> str:
    """Undo the fence lines a split adds (a reopening line, a closing fence) and rejoin.

    Checks each message is exactly reopen + slice of `text` + close, with the close present
    only where the slice ends inside a code fence and more messages follow.
    """
    joined = ""
    for i, message in enumerate(messages):
        fence = fence_state(joined)
        if fence is not None:
            assert message.startswith(fence + "\n"), f"message {i} does not reopen {fence}"
            message = message[len(fence) + 1 :]
        last = i == len(messages) - 1
        for cut in (0, len(FENCE), len(FENCE_CLOSE)):
            source = message[: len(message) - cut]
            if not text.startswith(joined + source):
                continue
            still_open = fence_state(joined + source) is not None and not last
            closed = FENCE if source.endswith("\n") else FENCE_CLOSE
            if message == source + (closed if still_open else ""):
                joined += source
                break
        else:
            pytest.fail(f"message {i} is not a clean slice of the reply: {message!r}")
    return joined


# -- (1) something shows at once ---------------------------------------------------------
async def test_a_fast_first_chunk_is_posted_as_text_without_a_placeholder() -> None:
    sink = RecordingSink()
    streamer = make(sink)
    streamer.start()
    await stream(streamer, ["Hello", " there", ", friend."])
    await streamer.finish()

    first = sink.calls[0]
    assert first.kind == "post"
    assert first.text.startswith("Hello")
    assert PLACEHOLDER not in [c.text for c in sink.calls]
    assert sink.messages == ["Hello there, friend."]


async def test_the_first_text_replaces_the_placeholder_without_waiting_a_flush() -> None:
    sink = RecordingSink()
    streamer = make(sink, flush=5.0, placeholder_after=0.02)  # a flush longer than the test
    streamer.start()
    await sink.until(lambda: len(sink.calls) == 1)
    streamer.feed("Here it comes")
    await sink.until(lambda: sink.messages[0] == "Here it comes", timeout=2.0)
    await streamer.finish()
    assert [c.kind for c in sink.calls] == ["post", "edit"]


async def test_a_slow_first_chunk_gets_a_placeholder_that_becomes_the_text() -> None:
    sink = RecordingSink()
    streamer = make(sink, placeholder_after=0.05)
    streamer.start()
    await sink.until(lambda: len(sink.calls) == 1)  # the model has said nothing yet
    assert (sink.calls[0].kind, sink.calls[0].text) == ("post", PLACEHOLDER)

    await stream(streamer, chunked("Thinking done. Here is the answer.", 5))
    await sink.until(lambda: sink.messages[0] != PLACEHOLDER)  # before the stream ends
    await streamer.finish()

    assert len(sink.of("post")) == 1
    assert sink.messages == ["Thinking done. Here is the answer."]
    assert streamer.stats.first_visible_at is not None
    assert streamer.stats.first_text_at is not None
    assert streamer.stats.first_visible_at < streamer.stats.first_text_at


# -- (2) cadence ------------------------------------------------------------------------
async def test_frames_are_at_least_a_flush_interval_apart_and_the_final_is_immediate() -> None:
    flush = 0.2
    sink = RecordingSink()
    streamer = make(sink, flush=flush)
    streamer.start()
    await stream(streamer, chunked(SENTENCE * 3, 3))  # ~0.5 s of tokens
    await sink.until(lambda: len(sink.of("edit")) >= 1)
    streamer.feed(" The end.")
    finished_at = time.monotonic()
    await streamer.finish()

    visible = [c.at for c in sink.calls]  # the post, the frames, the final
    frames = visible[:-1]
    assert len(frames) >= 3, "the reply grows while it streams"
    for before, after in itertools.pairwise(frames):
        assert after - before >= flush - SLACK
    # The final does not wait for the next flush: it goes as soon as the stream ends.
    assert visible[-1] - finished_at < flush / 2
    assert sink.messages == [SENTENCE * 3 + " The end."]


async def test_a_sinks_own_flush_interval_wins() -> None:
    sink = RecordingSink(flush_interval=0.2)
    streamer = make(sink, flush=0.01)
    streamer.start()
    await stream(streamer, chunked(SENTENCE * 2, 3))
    await streamer.finish()
    frames = [c.at for c in sink.calls][:-1]
    assert len(frames) >= 2
    for before, after in itertools.pairwise(frames):
        assert after - before >= 0.2 - SLACK


# -- (3) nothing lost, nothing too long ---------------------------------------------------
async def test_the_messages_show_exactly_the_streamed_text() -> None:
    text = "Sure! Here are *three* things:\n\n1. one\n2. two 🙂\n3. three — done.\n"
    sink = RecordingSink()
    streamer = make(sink, flush=0.05)
    streamer.start()
    await stream(streamer, chunked(text, 2), gap=0.005)
    await streamer.finish()
    assert sink.messages == [text]
    assert streamer.text == text
    assert streamer.stats.messages == [text]


LONG_REPLY = (
    "Here is the plan, step by step. " * 3
    + "\n\nFirst we set things up. "
    + SENTENCE * 2
    + "\n\n```python\n"
    + "".join(f"def step_{i}(x):\n    return x * {i}  # keep going\n" for i in range(12))
    + "```\n\nThat is all the code. "
    + SENTENCE * 4
    + "\n\nFinally a closing paragraph. "
    + SENTENCE * 2
    + "Done."
)


@pytest.mark.parametrize("how", ["streamed", "burst_after_first_post", "all_at_once"])
async def test_a_long_reply_splits_cleanly_across_messages(how: str) -> None:
    max_chars = 200
    sink = RecordingSink(max_chars=max_chars)
    streamer = make(sink, flush=0.05)
    streamer.start()
    if how == "streamed":
        await stream(streamer, chunked(LONG_REPLY, 9), gap=0.002)
    elif how == "burst_after_first_post":
        streamer.feed(LONG_REPLY[:20])
        await sink.until(lambda: len(sink.calls) == 1)
        streamer.feed(LONG_REPLY[20:])
    else:
        streamer.feed(LONG_REPLY)
    await streamer.finish()

    messages = sink.messages
    assert len(messages) >= 6
    for message in messages:
        # Room is left for a sink that closes a still-open fence when it renders.
        assert len(message) + FENCE_RESERVE <= max_chars
    for message in messages[:-1]:
        assert fence_state(message) is None, f"unbalanced fence in {message!r}"
    assert sum(1 for m in messages if m.startswith("```python\n")) >= 2, "the fence is reopened"
    assert sources(messages, LONG_REPLY) == LONG_REPLY
    assert streamer.stats.messages == messages


async def test_a_long_burst_at_the_end_is_posted_without_extra_edits() -> None:
    sink = RecordingSink(max_chars=200)
    streamer = make(sink)
    streamer.start()
    streamer.feed("Short start. ")
    await sink.until(lambda: len(sink.calls) == 1)
    streamer.feed(SENTENCE * 20)
    await streamer.finish()
    # One edit completes the first message; every further message is posted complete.
    assert len(sink.of("edit")) == 1
    assert "".join(sink.messages) == "Short start. " + SENTENCE * 20


async def test_a_full_message_is_completed_while_streaming_even_when_frames_must_wait() -> None:
    budget = EditBudget("workspace", calls=3, per=60.0)
    for _ in range(3):
        budget.owe()  # three other replies streaming: every slot is kept for their finals
    sink = RecordingSink(max_chars=200, edit_budgets=[budget])
    streamer = make(sink, flush=0.02)
    streamer.start()
    streamer.feed("Short start. ")
    await sink.until(lambda: len(sink.calls) == 1)
    streamer.feed(SENTENCE)
    await eventually(lambda: budget.waiting == 1)  # a frame waits for a slot that won't come
    streamer.feed(SENTENCE * 5)  # now more than one message holds
    await sink.until(lambda: len(sink.messages) == 2)  # before the stream ends
    assert sink.messages[0].startswith("Short start. The quick") and sink.of("edit")
    streamer.feed(SENTENCE)
    await streamer.finish()
    assert "".join(sink.messages) == "Short start. " + SENTENCE * 7


# -- (4) and (5): the platform pushes back -----------------------------------------------
async def test_a_429_on_a_frame_makes_the_reply_wait_then_send_the_newest_text() -> None:
    sink = RecordingSink()
    sink.rate_limit_next_edits = [0.1, 0.1]
    streamer = make(sink, flush=0.05)
    streamer.start()
    text = SENTENCE * 4
    await stream(streamer, chunked(text, 4))
    await streamer.finish()

    assert streamer.stats.rate_limited == 2
    refused = sink.rejected[-1]
    edits = sink.of("edit")
    assert edits, "edits resume after the platform's wait"
    assert edits[0].at - refused.at >= 0.1 - SLACK, "nothing is sent before Retry-After"
    assert len(edits[0].text) > len(refused.text), "the retry carries the newest text"
    assert sink.messages == [text]


async def test_a_429_on_the_final_edit_is_retried_until_the_text_lands() -> None:
    sink = RecordingSink()
    streamer = make(sink)
    streamer.start()
    streamer.feed("Hello")
    await sink.until(lambda: len(sink.calls) == 1)
    sink.rate_limit_next_edits = [0.1]
    streamer.feed(", world.")
    await streamer.finish()
    assert sink.messages == ["Hello, world."]
    assert sink.of("edit")[-1].at - sink.rejected[0].at >= 0.1 - SLACK


async def test_a_failing_frame_edit_does_not_break_the_reply() -> None:
    sink = RecordingSink()
    sink.fail_next_edits = 1
    streamer = make(sink, flush=0.05)
    streamer.start()
    text = SENTENCE * 3
    await stream(streamer, chunked(text, 4))
    await streamer.finish()
    assert streamer.stats.failed_calls == 1
    assert sink.messages == [text]


@pytest.mark.parametrize("failure", ["rate_limited", "error"])
async def test_after_a_refused_frame_the_newest_text_shows_even_if_the_model_pauses(
    failure: str,
) -> None:
    sink = RecordingSink()
    streamer = make(sink, flush=0.05)
    streamer.start()
    streamer.feed("Let me think")
    await sink.until(lambda: len(sink.calls) == 1)
    if failure == "rate_limited":
        sink.rate_limit_next_edits = [0.05, 0.05]
    else:
        sink.fail_next_edits = 2
    streamer.feed(" about this.")
    await sink.until(lambda: len(sink.rejected) == 2)
    # The model goes quiet (a long tool call, say): the text must not stay stale until then.
    await sink.until(lambda: sink.messages == ["Let me think about this."], timeout=1.0)
    streamer.feed(" Done.")
    await streamer.finish()
    assert sink.messages == ["Let me think about this. Done."]


async def test_a_429_for_one_reply_holds_every_reply_in_that_scope() -> None:
    budget = EditBudget("workspace", calls=100, per=1.0)
    refused, other = RecordingSink(edit_budgets=[budget]), RecordingSink(edit_budgets=[budget])
    streamers = [make(refused, flush=0.05), make(other, flush=0.05)]
    for streamer in streamers:
        streamer.start()
        streamer.feed("Working")
    await refused.until(lambda: len(refused.calls) == 1)
    refused.rate_limit_next_edits = [0.3]
    text = SENTENCE * 3
    await asyncio.gather(*(stream(s, chunked(text, 3)) for s in streamers))
    await asyncio.gather(*(s.finish() for s in streamers))

    # (A call granted before the 429 may still be on its way; nothing granted after it goes.)
    said_429_at = refused.rejected[0].at
    pause = (said_429_at + SLACK, said_429_at + 0.3 - SLACK)
    during_pause = [c for c in other.of("edit") if pause[0] < c.at < pause[1]]
    assert during_pause == []
    assert refused.messages == other.messages == ["Working" + text]


# -- (6) the shared budget under load ----------------------------------------------------
async def test_fifty_replies_share_a_small_budget_without_a_429_or_a_late_final() -> None:
    replies, calls, per = 50, 10, 1.0
    budget = EditBudget("workspace", calls=calls, per=per)
    platform = SharedLimit(calls=calls, window=per)
    sinks = [RecordingSink(edit_budgets=[budget], edit_limit=platform) for _ in range(replies)]
    streamers = [make(sink) for sink in sinks]
    texts = [f"Reply {i}: " + SENTENCE * (2 + i % 5) for i in range(replies)]
    finished_at: list[float] = [0.0] * replies

    async def reply(i: int) -> None:
        await asyncio.sleep(0.01 * i)  # mentions arrive over half a second
        streamers[i].start()
        await stream(streamers[i], chunked(texts[i], 6))  # 0.2 - 0.6 s of tokens
        finished_at[i] = time.monotonic()
        await streamers[i].finish()

    await asyncio.wait_for(asyncio.gather(*(reply(i) for i in range(replies))), 15.0)

    assert platform.overruns == 0
    assert sum(s.stats.rate_limited for s in streamers) == 0
    assert all(not sink.rejected for sink in sinks)
    for i, sink in enumerate(sinks):
        assert sink.messages == [texts[i]], f"reply {i} is incomplete"
        assert sink.calls[0].kind == "post" and sink.calls[0].text != PLACEHOLDER
    assert budget.owed == 0

    # Every final came after its reply had ended (how late: the e2e benchmark's budget run,
    # "last chunk→final", against the lower bound its limits allow).
    assert all(sink.of("edit")[-1].at >= finished_at[i] for i, sink in enumerate(sinks))
    # Frames are skipped, not queued: far fewer edits than a timer per reply would send
    # (and never more than the platform allows: `platform.overruns` above).
    edits = sum(len(sink.of("edit")) for sink in sinks)
    timer_frames = sum(len(t) / 6 * 0.01 / FLUSH for t in texts)
    assert edits <= replies + 0.5 * timer_frames


# -- (7) notes and (8) short replies ------------------------------------------------------
async def test_a_note_on_a_reply_that_showed_nothing_is_posted_alone() -> None:
    sink = RecordingSink()
    streamer = make(sink)
    streamer.start()
    await streamer.finish("I can't reach the model server right now.")
    assert sink.messages == ["I can't reach the model server right now."]
    assert [c.kind for c in sink.calls] == ["post"]


async def test_a_note_on_a_placeholder_replaces_it() -> None:
    sink = RecordingSink()
    streamer = make(sink, placeholder_after=0.02)
    streamer.start()
    await sink.until(lambda: sink.messages == [PLACEHOLDER])
    await streamer.finish("The model took too long to answer.")
    assert sink.messages == ["The model took too long to answer."]


async def test_a_note_after_partial_text_follows_a_blank_line() -> None:
    sink = RecordingSink()
    streamer = make(sink)
    streamer.start()
    await stream(streamer, ["The answer is", " forty"])
    await streamer.finish("The model's answer was cut off.")
    assert sink.messages == ["The answer is forty\n\nThe model's answer was cut off."]


async def test_a_short_reply_is_one_post_and_no_edit() -> None:
    sink = RecordingSink()
    streamer = make(sink)
    streamer.start()
    streamer.feed("Hi!")
    await streamer.finish()
    assert [(c.kind, c.text) for c in sink.calls] == [("post", "Hi!")]
    assert (streamer.stats.posts, streamer.stats.edits) == (1, 0)


async def test_finishing_settles_the_final_a_reply_owed() -> None:
    budget = EditBudget("workspace", calls=5, per=60.0)
    sink = RecordingSink(edit_budgets=[budget])
    streamer = make(sink)
    streamer.start()
    assert budget.owed == 1
    streamer.feed("Hi!")
    await streamer.finish()
    assert budget.owed == 0


async def test_cancelling_a_reply_that_never_started_leaves_other_replies_owed_finals() -> None:
    budget = EditBudget("workspace", calls=5, per=60.0)
    streaming = make(RecordingSink(edit_budgets=[budget]))
    streaming.start()
    never_started = make(RecordingSink(edit_budgets=[budget]))
    await never_started.cancel()  # e.g. loading history failed before the stream began
    assert budget.owed == 1
    await streaming.cancel()
    assert budget.owed == 0
