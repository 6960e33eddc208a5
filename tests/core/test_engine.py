"""The engine end to end: real openai SDK against the fake upstream, real SQLite."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest

from core.engine import Engine, Outcome
from core.model import ChannelSettings, ConversationKey, Turn
from tests.fakes.sink import RecordingSink
from tests.fakes.upstream import FakeUpstream, Script
from tests.support.engine import KEY, EngineFactory, ask, eventually


def sent_messages(upstream: FakeUpstream, index: int = -1) -> list[tuple[str, str]]:
    body: dict[str, Any] = upstream.requests[index]["body"]
    return [(m["role"], m["content"]) for m in body["messages"]]


def rows(engine: Engine) -> list[tuple[str, str, str]]:
    with sqlite3.connect(engine.store.path) as db:  # the SQLite store's file
        return list(db.execute("SELECT role, content, status FROM messages ORDER BY id"))


async def test_a_turn_streams_the_reply_and_remembers_it(
    engine: Engine, upstream: FakeUpstream
) -> None:
    upstream.script(Script(text="Paris is the capital of France.", interval=0.005))
    sink = await ask(engine, "  What is the capital of France?  ")
    assert sink.shown == "Paris is the capital of France."
    assert sent_messages(upstream) == [
        ("system", "You are a test bot."),
        ("user", "What is the capital of France?"),
    ]
    body = upstream.requests[-1]["body"]
    assert body["model"] == "gpt-4o-mini" and body["max_tokens"] == 1024
    assert rows(engine) == [
        ("user", "What is the capital of France?", "complete"),
        ("assistant", "Paris is the capital of France.", "complete"),
    ]

    upstream.script(Script(text="About 2.1 million."))
    await ask(engine, "And its population?")
    assert sent_messages(upstream)[1:] == [
        ("user", "What is the capital of France?"),
        ("assistant", "Paris is the capital of France."),
        ("user", "And its population?"),
    ]


async def test_memory_survives_a_new_engine_on_the_same_file(
    make_engine: EngineFactory, upstream: FakeUpstream
) -> None:
    first = await make_engine()
    upstream.script(Script(text="Noted: your name is Ada."))
    await ask(first, "My name is Ada.")
    await first.store.close()

    second = await make_engine()
    await ask(second, "What is my name?")
    assert ("user", "My name is Ada.") in sent_messages(upstream)
    assert ("assistant", "Noted: your name is Ada.") in sent_messages(upstream)


async def test_channels_do_not_leak_into_each_other(engine: Engine, upstream: FakeUpstream) -> None:
    await ask(engine, "secret of channel one", key=KEY)
    other = ConversationKey("test", "w1", "c2")
    await ask(engine, "hello from channel two", key=other)
    assert sent_messages(upstream) == [
        ("system", "You are a test bot."),
        ("user", "hello from channel two"),
    ]


async def test_reset_forgets_the_channel(engine: Engine, upstream: FakeUpstream) -> None:
    await ask(engine, "remember the number 42")
    sink = await ask(engine, "/reset", admin=True)
    assert sink.announcements == [
        "Done: I forgot this channel's conversation (2 messages). _(by u1)_"
    ]
    assert len(upstream.requests) == 1  # commands never reach the model
    await ask(engine, "which number?")
    assert sent_messages(upstream)[1:] == [("user", "which number?")]


async def test_model_and_system_commands_change_what_is_sent(
    make_engine: EngineFactory, upstream: FakeUpstream
) -> None:
    engine = await make_engine(models="llama3.2")
    await ask(engine, "model llama3.2", admin=True)
    await ask(engine, "system Answer like a pirate.", admin=True)
    await ask(engine, "hello")
    body = upstream.requests[-1]["body"]
    assert body["model"] == "llama3.2"
    assert sent_messages(upstream)[0] == ("system", "Answer like a pirate.")
    sink = await ask(engine, "/model")
    assert "`llama3.2`" in sink.notices[0]


async def test_memory_off_is_stateless_and_stores_nothing(
    engine: Engine, upstream: FakeUpstream
) -> None:
    await ask(engine, "first question")
    await ask(engine, "/memory off", admin=True)
    await ask(engine, "second question")
    assert sent_messages(upstream) == [
        ("system", "You are a test bot."),
        ("user", "second question"),
    ]
    assert [r[1] for r in rows(engine) if r[0] == "user"] == ["first question"]
    await ask(engine, "/memory on", admin=True)
    await ask(engine, "third question")
    assert ("user", "first question") in sent_messages(upstream)


async def test_help_and_unknown_commands(engine: Engine, upstream: FakeUpstream) -> None:
    assert "reset" in (await ask(engine, "help")).notices[0]
    unknown = await ask(engine, "/dance")
    assert "`dance`" in unknown.notices[0] and "memory on|off" in unknown.notices[0]
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("x" * 4001, "4,000"),
        ("bad \x00 byte", "characters"),
        ("@alice @bob", "mention"),
    ],
)
async def test_bad_input_gets_a_sentence_and_no_upstream_call(
    engine: Engine, upstream: FakeUpstream, text: str, says: str
) -> None:
    sink = await ask(engine, text)
    assert len(sink.notices) == 1 and says in sink.notices[0].lower()
    assert upstream.requests == [] and rows(engine) == []


async def test_rate_limit_tells_the_user_when_to_retry(
    make_engine: EngineFactory, upstream: FakeUpstream
) -> None:
    engine = await make_engine(rate_limit_burst=2, rate_limit_per_minute=6)
    await ask(engine, "one")
    await ask(engine, "two")
    refused = await ask(engine, "three")
    assert refused.notices and "Try again in 10 seconds" in refused.notices[0]
    assert refused.result.outcome is Outcome.RATE_LIMITED
    assert 9 < refused.result.retry_after <= 10
    assert refused.result.notice == refused.notices[0]
    assert len(upstream.requests) == 2
    other_user = await ask(engine, "I am someone else", author="u2")
    assert other_user.shown and len(upstream.requests) == 3


async def test_context_window_by_turns_and_by_tokens(
    make_engine: EngineFactory, upstream: FakeUpstream
) -> None:
    engine = await make_engine(history_turns=1)
    for n in range(3):
        upstream.script(Script(text=f"answer {n}"))
        await ask(engine, f"question {n}")
    assert sent_messages(upstream)[1:] == [
        ("user", "question 1"),
        ("assistant", "answer 1"),
        ("user", "question 2"),
    ]

    tight = await make_engine(history_tokens=100, system_prompt="s")
    long = "word " * 120  # about 150 tokens: older turns no longer fit
    await ask(tight, long, key=ConversationKey("test", "w1", "tokens"))
    await ask(tight, "short", key=ConversationKey("test", "w1", "tokens"))
    assert sent_messages(upstream)[1:] == [("user", "short")]


@pytest.mark.parametrize(
    ("script", "says", "kind"),
    [
        (Script(status=401), "API key", "upstream"),
        (Script(status=404), "doesn't know this model", "upstream"),
        (Script(status=429, retry_after=7), "about 7 seconds", "upstream"),
        (Script(status=500), "server error", "upstream"),
        (Script(fault="hang"), "took too long", "upstream_timeout"),
        (Script(fault="malformed", fault_after=0), "cut off", "upstream"),
        (Script(fault="empty_200"), "cut off", "upstream"),
    ],
)
async def test_each_upstream_fault_gives_its_sentence_and_the_next_turn_works(
    make_engine: EngineFactory, upstream: FakeUpstream, script: Script, says: str, kind: str
) -> None:
    # A 429 whose Retry-After would pass the queue timeout is not waited for.
    engine = await make_engine(first_token_timeout=0.5, queue_timeout=5)
    upstream.script(script)
    sink = await ask(engine, "hello?")
    assert says in sink.shown
    assert sink.result.outcome is Outcome.FAILED and sink.result.error == kind
    assert says in sink.result.note and sink.result.reply == ""
    if script.status == 429:
        assert sink.result.retry_after == 7
    assert rows(engine)[0] == ("user", "hello?", "complete")  # what the user said is kept
    assert rows(engine)[1][2] == "failed"

    upstream.script(Script(text="All good now."))
    assert (await ask(engine, "again?")).shown == "All good now."
    assert ("user", "hello?") in sent_messages(upstream)


async def test_a_dropped_stream_keeps_the_partial_text_marked(
    engine: Engine, upstream: FakeUpstream
) -> None:
    upstream.script(Script(text="The first part arrives and then", fault="drop_mid", fault_after=3))
    sink = await ask(engine, "tell me a story")
    partial = "The first part arrives and then"[:12]
    assert sink.shown.startswith(partial) and "cut off" in sink.shown
    assert rows(engine)[1] == ("assistant", partial, "partial")


async def test_context_too_long_retries_once_with_a_smaller_window(
    engine: Engine, upstream: FakeUpstream
) -> None:
    for n in range(3):
        await ask(engine, f"question {n}")
    upstream.script(Script(status=400, code="context_length_exceeded"), Script(text="Fits now."))
    sink = await ask(engine, "the big one")
    assert sink.shown == "Fits now."
    assert len(sent_messages(upstream, -1)) < len(sent_messages(upstream, -2))
    assert sent_messages(upstream)[-1] == ("user", "the big one")


async def test_turns_of_one_channel_run_in_order_others_concurrently(
    engine: Engine, upstream: FakeUpstream
) -> None:
    upstream.script(
        Script(text="slow first answer", interval=0.05),
        Script(text="other channel answer"),
        Script(text="second answer"),
    )
    first = asyncio.create_task(ask(engine, "first"))
    await upstream.wait_requests(1)
    elsewhere = asyncio.create_task(ask(engine, "hi", key=ConversationKey("test", "w1", "c9")))
    second = asyncio.create_task(ask(engine, "second"))
    await upstream.wait_requests(2)
    assert not first.done()  # the other channel did not wait for the slow stream
    await asyncio.gather(first, elsewhere, second)
    assert sent_messages(upstream, 2)[-3:] == [
        ("user", "first"),
        ("assistant", "slow first answer"),
        ("user", "second"),
    ]


async def test_over_the_stream_cap_everyone_waits_in_line_and_is_answered_in_full(
    make_engine: EngineFactory, upstream: FakeUpstream
) -> None:
    engine = await make_engine(max_concurrent_streams=3)
    speak = asyncio.Event()  # the model says nothing until the test lets it
    upstream.default = Script(text="an answer for everyone", chunk_chars=3, hold=speak)
    keys = [ConversationKey("test", "w1", f"c{n}") for n in range(12)]
    sinks = [RecordingSink() for _ in keys]
    turns = [
        asyncio.create_task(engine.handle(Turn(key, f"u{n}", "hello"), sink))
        for n, (key, sink) in enumerate(zip(keys, sinks, strict=True))
    ]
    # Everyone sees something while the three streams have not said a word yet.
    await asyncio.wait_for(asyncio.gather(*(s.until(lambda s=s: bool(s.calls)) for s in sinks)), 3)
    waiting = [s for s in sinks if "Waiting for my turn" in s.calls[0].text]
    assert len(waiting) == 9  # their place in line, not the placeholder
    speak.set()
    results = await asyncio.gather(*turns)
    assert all(r.outcome is Outcome.COMPLETE for r in results)
    assert all(s.shown == "an answer for everyone" and not s.notices for s in sinks)
    assert upstream.peak_concurrent <= 3 and len(upstream.requests) == 12
    assert "_Waiting for my turn: 8 people ahead of you…_" in [s.calls[0].text for s in waiting]


async def test_a_wait_in_line_ends_with_a_sentence_at_the_queue_timeout(
    make_engine: EngineFactory, upstream: FakeUpstream
) -> None:
    engine = await make_engine(max_concurrent_streams=1, queue_timeout=0.3)
    upstream.script(Script(text="a slow answer", fault="hang_mid", fault_after=2))
    first = asyncio.create_task(ask(engine, "first"))
    await upstream.wait_requests(1)
    late = await ask(engine, "me too", key=ConversationKey("test", "w1", "c2"))
    assert "couldn't get to this within 1 second" in late.shown
    assert late.result.outcome is Outcome.FAILED and late.result.error == "busy"
    assert len(upstream.requests) == 1  # it never reached the model server
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)


async def test_only_a_full_line_turns_people_away(
    make_engine: EngineFactory, upstream: FakeUpstream
) -> None:
    engine = await make_engine(max_concurrent_streams=1, max_queued=1)
    upstream.default = Script(text="slowly", chunk_chars=1, interval=0.1)
    first = asyncio.create_task(ask(engine, "first", key=ConversationKey("test", "w1", "c1")))
    await upstream.wait_requests(1)
    second = asyncio.create_task(ask(engine, "second", key=ConversationKey("test", "w1", "c2")))
    await eventually(lambda: engine.line.queued == 1)
    refused = await ask(engine, "third", key=ConversationKey("test", "w1", "c3"))
    assert refused.result.outcome is Outcome.BUSY and "waiting line is full" in refused.notices[0]
    assert [(await t).shown for t in (first, second)] == ["slowly", "slowly"]


async def test_a_model_server_asking_to_come_back_later_is_waited_out(
    make_engine: EngineFactory, upstream: FakeUpstream
) -> None:
    # No placeholder first (it would hold the sign back for SIGN_REFRESH): the wait shows.
    engine = await make_engine(placeholder_after=5)
    upstream.script(*[Script(status=429, retry_after="0.1")] * 4, Script(text="worth the wait"))
    sink = await ask(engine, "hello?")
    assert sink.result.outcome is Outcome.COMPLETE and sink.shown == "worth the wait"
    assert len(upstream.requests) == 5
    assert any("Waiting for the model server" in c.text for c in sink.calls)
    assert engine.line.limit < engine.settings.max_concurrent_streams  # it backed off


async def test_an_overloaded_model_server_without_retry_after_is_asked_again_later(
    engine: Engine, upstream: FakeUpstream
) -> None:
    upstream.script(Script(status=503), Script(text="back on my feet"))
    sink = await ask(engine, "hello?")
    assert sink.shown == "back on my feet" and len(upstream.requests) == 2


async def test_a_spent_quota_is_not_waited_for(engine: Engine, upstream: FakeUpstream) -> None:
    upstream.script(Script(status=429, code="insufficient_quota", retry_after="0.1"))
    sink = await ask(engine, "hello?")
    assert "run out of quota" in sink.shown and len(upstream.requests) == 1


async def test_an_answer_longer_than_a_message_is_split_without_loss(
    engine: Engine, upstream: FakeUpstream
) -> None:
    text = "\n\n".join(f"Paragraph {n}. " + "lorem ipsum " * 30 for n in range(12))
    upstream.script(Script(text=text, chunk_chars=50))
    sink = RecordingSink(max_chars=500)
    result = await engine.handle(Turn(KEY, "u1", "write a lot"), sink)
    assert result.outcome is Outcome.COMPLETE and result.reply == text
    assert len(sink.messages) > 1 and all(len(m) <= 500 for m in sink.messages)
    assert sink.shown == text


async def test_shutdown_lets_replies_in_flight_finish_within_the_grace(
    engine: Engine, upstream: FakeUpstream
) -> None:
    upstream.script(Script(text="finishing politely", interval=0.02))
    turn = asyncio.create_task(ask(engine, "hello"))
    await upstream.wait_requests(1)
    await engine.drain(grace=10)
    assert (await turn).shown == "finishing politely"
    assert rows(engine)[-1] == ("assistant", "finishing politely", "complete")
    late = await ask(engine, "anyone there?")
    assert "restarting" in late.notices[0] and len(upstream.requests) == 1


async def test_shutdown_past_the_grace_marks_replies_interrupted(
    engine: Engine, upstream: FakeUpstream
) -> None:
    upstream.script(Script(text="This answer never ends", fault="hang_mid", fault_after=3))
    turn = asyncio.create_task(ask(engine, "hello"))
    await upstream.wait_requests(1)
    await engine.drain(grace=0.3)
    sink = await turn
    partial = "This answer never ends"[:12]
    assert sink.shown.startswith(partial) and "interrupted" in sink.shown
    assert rows(engine)[-1] == ("assistant", partial, "interrupted")


async def test_a_crash_mid_reply_leaves_a_streaming_row_that_restart_marks(
    make_engine: EngineFactory, upstream: FakeUpstream
) -> None:
    engine = await make_engine()
    upstream.script(Script(text="a reply cut by a crash", fault="hang_mid"))
    turn = asyncio.create_task(ask(engine, "hello"))
    await upstream.wait_requests(1)
    await eventually(lambda: len(rows(engine)) == 2)  # written while the model answers
    user, reply = rows(engine)
    assert user == ("user", "hello", "complete") and reply[::2] == ("assistant", "streaming")
    assert "a reply cut by a crash".startswith(reply[1])  # empty, or the words saved so far
    turn.cancel()  # as abrupt as a crash gets inside one process
    await asyncio.gather(turn, return_exceptions=True)

    restarted = await make_engine()
    assert await restarted.store.mark_interrupted() == 1
    assert rows(restarted)[-1][2] == "interrupted"
    upstream.script(Script(text="fresh start"))
    assert (await ask(restarted, "again")).shown == "fresh start"


async def test_a_front_door_can_show_the_note_itself(
    engine: Engine, upstream: FakeUpstream
) -> None:
    upstream.script(Script(text="Half an answ", fault="drop_mid", fault_after=3))
    sink = RecordingSink()
    sink.inline_notes = False  # the HTTP API puts the note in its own field
    result = await engine.handle(Turn(KEY, "u1", "hi"), sink)
    assert result.outcome is Outcome.PARTIAL
    assert sink.shown == result.reply == "Half an answ"[:12]
    assert "cut off" in result.note


@pytest.mark.parametrize(
    "command", ["/reset", "/model llama3.2", "/system Be evil.", "/memory off"]
)
async def test_a_member_who_is_not_an_admin_changes_nothing(
    make_engine: EngineFactory, upstream: FakeUpstream, command: str
) -> None:
    engine = await make_engine(models="llama3.2")
    await ask(engine, "remember 42")
    refused = await ask(engine, command)
    assert refused.result.outcome is Outcome.REFUSED
    assert refused.notices[0].startswith("Only an admin can ") and not refused.announcements
    assert await engine.channel_settings(KEY) == ChannelSettings()
    assert len(rows(engine)) == 2  # nothing forgotten either
    shown = await ask(engine, "/model")  # looking is for everyone
    assert "`gpt-4o-mini`" in shown.notices[0]


async def test_parley_admins_may_change_a_channel_and_everyone_is_told(
    make_engine: EngineFactory, upstream: FakeUpstream
) -> None:
    engine = await make_engine(admins="U0BOSS, 1234", models="llama3.2")
    sink = RecordingSink()
    turn = Turn(KEY, "U0BOSS", "/system Be brief.", author_name="Boss")
    await engine.handle(turn, sink)
    assert sink.announcements == ["System prompt set for this channel. _(by Boss)_"]
    assert (await engine.channel_settings(KEY)).system_prompt == "Be brief."


async def test_only_the_listed_models_are_accepted_even_from_an_admin(
    make_engine: EngineFactory, upstream: FakeUpstream
) -> None:
    engine = await make_engine()  # PARLEY_MODELS unset: the default model only
    refused = await ask(engine, "/model o1-pro-2025-super-expensive", admin=True)
    assert "I can't switch to `o1-pro-2025-super-expensive`" in refused.notices[0]
    assert "the models here are `gpt-4o-mini`." in refused.notices[0]
    assert await engine.channel_settings(KEY) == ChannelSettings()
