"""The engine on in-memory ports: InMemoryStore and ScriptedLLM, no server, no file.

Wired as bots.main.open_engine wires the real ones: Engine(settings, store, llm). The fakes
are held to the real store's behaviour by tests/contract; these tests look at what a
person would notice of memory around one turn.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from core.config import EngineSettings
from core.engine import Engine, Outcome
from core.errors import StorageError, StreamDropped, UpstreamUnavailable
from core.model import ConversationKey, MessageStatus, Role, Turn, Usage, estimate_tokens
from core.transcript import CRASH_NOTE
from tests.fakes.sink import RecordingSink
from tests.support.engine import ask
from tests.support.llm import Script, ScriptedLLM
from tests.support.memory import InMemoryStore

KEY = ConversationKey("test", "w1", "c1")
SYSTEM = "You are a test bot."


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def llm() -> ScriptedLLM:
    return ScriptedLLM()


@pytest.fixture
async def engine(store: InMemoryStore, llm: ScriptedLLM) -> AsyncIterator[Engine]:
    settings = EngineSettings(
        _env_file=None,  # type: ignore[call-arg]  # pydantic-settings' init-only option
        system_prompt=SYSTEM,
        flush_interval=0.05,
        placeholder_after=0.05,
        rate_limit_burst=100,
    )
    await store.open()
    built = Engine(settings, store, llm)
    yield built
    await llm.close()
    await store.close()


def stored(store: InMemoryStore) -> list[tuple[Role, str, MessageStatus]]:
    return [(r.message.role, r.message.content, r.message.status) for r in store.rows(KEY)]


async def test_the_question_is_in_memory_before_the_model_answers(
    engine: Engine, store: InMemoryStore, llm: ScriptedLLM
) -> None:
    gate = asyncio.Event()
    script = llm.script(Script(["Paris."], gate=gate))
    turn = asyncio.create_task(ask(engine, "What is the capital of France?"))
    await script.parked.wait()  # the model is being asked, and has said nothing yet

    assert llm.last.pairs == [("system", SYSTEM), ("user", "What is the capital of France?")]
    assert stored(store) == [
        (Role.USER, "What is the capital of France?", MessageStatus.COMPLETE),
        (Role.ASSISTANT, "", MessageStatus.STREAMING),
    ]
    gate.set()
    sink = await turn
    assert sink.result.outcome is Outcome.COMPLETE and sink.shown == "Paris."


async def test_the_reply_is_stored_complete_with_its_text_and_reported_tokens(
    engine: Engine, store: InMemoryStore, llm: ScriptedLLM
) -> None:
    llm.script(Script(["Paris is ", "the capital."], usage=Usage(20, 6)))
    sink = await ask(engine, "Capital of France?")
    assert sink.result.outcome is Outcome.COMPLETE
    assert sink.shown == "Paris is the capital."
    assert stored(store) == [
        (Role.USER, "Capital of France?", MessageStatus.COMPLETE),
        (Role.ASSISTANT, "Paris is the capital.", MessageStatus.COMPLETE),
    ]
    reply = store.rows(KEY)[1]
    assert reply.message.tokens == 6 and reply.platform_ref is None
    assert llm.last.model == "gpt-4o-mini" and llm.last.max_tokens == 1024


@pytest.mark.parametrize(
    ("deltas", "status", "outcome"),
    [
        (["Half an ", "answer"], MessageStatus.PARTIAL, Outcome.PARTIAL),
        ([], MessageStatus.FAILED, Outcome.FAILED),
    ],
    ids=["mid-stream", "before-any-text"],
)
async def test_an_upstream_error_stores_what_was_said_with_its_status(
    engine: Engine,
    store: InMemoryStore,
    llm: ScriptedLLM,
    deltas: list[str],
    status: MessageStatus,
    outcome: Outcome,
) -> None:
    llm.script(Script(deltas, error=StreamDropped, error_after=len(deltas)))
    sink = await ask(engine, "Tell me a story.")
    text = "".join(deltas)
    assert sink.result.outcome is outcome and sink.result.error == "upstream"
    assert sink.result.reply == text
    assert StreamDropped.user_message in sink.shown
    assert stored(store) == [
        (Role.USER, "Tell me a story.", MessageStatus.COMPLETE),
        (Role.ASSISTANT, text, status),
    ]
    assert store.rows(KEY)[1].message.tokens == estimate_tokens(text)


async def test_the_second_turn_is_asked_with_the_first(
    engine: Engine, store: InMemoryStore, llm: ScriptedLLM
) -> None:
    llm.script(Script(["Noted, Ada."]))
    await ask(engine, "My name is Ada.")
    llm.script(Script(["Ada."]))
    sink = await ask(engine, "What is my name?")
    assert sink.shown == "Ada."
    assert llm.last.pairs == [
        ("system", SYSTEM),
        ("user", "My name is Ada."),
        ("assistant", "Noted, Ada."),
        ("user", "What is my name?"),
    ]


async def test_a_failed_reply_without_text_is_left_out_of_the_next_context(
    engine: Engine, llm: ScriptedLLM
) -> None:
    llm.script(Script([], error=UpstreamUnavailable))
    await ask(engine, "First try")
    await ask(engine, "Second try")
    assert llm.last.pairs == [("system", SYSTEM), ("user", "First try"), ("user", "Second try")]


async def test_reset_forgets_the_conversation(
    engine: Engine, store: InMemoryStore, llm: ScriptedLLM
) -> None:
    await ask(engine, "Remember the number 42.")
    other = ConversationKey("test", "w1", "c2")
    await ask(engine, "Another channel's secret.", key=other)
    sink = await ask(engine, "reset", admin=True)
    assert sink.result.outcome is Outcome.COMMAND
    assert "2 messages" in sink.announcements[0]
    assert store.rows(KEY) == []
    assert len(store.rows(other)) == 2  # only this channel forgot

    await ask(engine, "What number?")
    assert llm.last.pairs == [("system", SYSTEM), ("user", "What number?")]


async def test_a_store_that_cannot_save_the_question_stops_the_turn(
    engine: Engine, store: InMemoryStore, llm: ScriptedLLM
) -> None:
    store.failing = True
    sink = await ask(engine, "Hello?")
    assert sink.result.outcome is Outcome.FAILED and sink.result.error == "storage"
    assert sink.notices == [StorageError.user_message]
    assert llm.requests == []  # never answered from a memory that lost the question


async def test_a_crash_mid_reply_leaves_a_repair_for_the_next_start(
    engine: Engine, store: InMemoryStore, llm: ScriptedLLM
) -> None:
    gate = asyncio.Event()  # never set: the process "crashes" while the model is writing
    script = llm.script(Script(["Once upon ", "a time"], gate=gate, gate_after=1))
    sink = RecordingSink()
    turn = asyncio.create_task(engine.handle(Turn(KEY, "u1", "Tell me a story."), sink))
    await script.parked.wait()
    await store.until(lambda s: any(r.platform_ref for r in s.rows(KEY)))  # checkpointed
    turn.cancel()
    with pytest.raises(asyncio.CancelledError):
        await turn

    # The next start: replies left streaming are interrupted, then repaired on the platform.
    assert await store.mark_interrupted() == 1
    [repair] = await engine.repairs(KEY.platform)
    ref = json.loads(store.rows(KEY)[1].platform_ref or "{}")["ref"]
    assert repair.ref == ref and repair.key == KEY
    assert repair.text == f"Once upon \n\n{CRASH_NOTE}"
    await engine.repaired(repair)
    assert await engine.repairs(KEY.platform) == []
    assert stored(store)[1] == (Role.ASSISTANT, "Once upon ", MessageStatus.INTERRUPTED)
