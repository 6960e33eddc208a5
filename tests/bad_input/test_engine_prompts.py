"""(a) Whatever a person sends, the engine answers once, calls upstream only for what it
accepted (exactly as validated), and the conversation carries on afterwards."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import event, example, given

from core.commands import parse_command
from core.engine import Outcome
from core.model import ConversationKey, Turn
from core.validation import UNREADABLE_SENTENCE, InvalidPrompt, validate_prompt
from tests.bad_input.conftest import Channels, WatchedEngine, examples
from tests.bad_input.strategies import prompts
from tests.fakes.sink import RecordingSink
from tests.fakes.upstream import DEFAULT_TEXT, FakeUpstream

LIMIT = 4000  # PARLEY_MAX_PROMPT_CHARS's default, which the engine fixture keeps
FOLLOW_UP = "And now an ordinary question?"
# Characters no prompt may carry upstream: C0/C1 controls other than tab and line breaks,
# a carriage return outside "\r\n", and surrogates (which cannot even be encoded as UTF-8).
UNREADABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]|\r(?!\n)")
EDGE_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"  # what a paste brings along, trimmed
A_SENTENCE = re.compile(r"[A-Z][^.!?]*\w[^.!?]*[.!?]")


def sent_messages(upstream: FakeUpstream, index: int) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in upstream.requests[index]["body"]["messages"]]


def check_one_visible_outcome(sink: RecordingSink) -> None:
    """A reply (posted messages, no notice) or one notice (or announcement of a change) with
    a sentence in it, not both."""
    if sink.notices or sink.announcements:
        [notice] = sink.notices + sink.announcements
        assert not sink.messages, "a notice and a reply for one turn"
        assert A_SENTENCE.search(notice), f"a notice without a sentence: {notice!r}"
    else:
        assert sink.messages, "nothing visible at all"
        assert sink.shown.strip(), "a reply that shows nothing"


async def turn(engine: WatchedEngine, key: ConversationKey, text: str) -> RecordingSink:
    sink = RecordingSink(max_chars=2000)
    # an admin: a setting command's text goes through the same checks as a question's
    sink.result = await engine.handle(Turn(key, "U0PERSON", text, admin=True), sink)
    return sink


@examples(600)
@given(text=prompts(LIMIT))
@example(text="\x00")
@example(text="hello\ud800")
@example(text="<@U123> <@U456>")
@example(text="@everyone @here")
@example(text="```")
@example(text="*")
@example(text="\u200b\ufeff \u2060")
@example(text="x" * (LIMIT + 1))
@example(text=" \n" + "x" * LIMIT + "\u200b\n")
@example(text="👨\u200d👩\u200d👧 " * 1000)
async def test_any_prompt_gets_one_answer_and_upstream_sees_exactly_what_was_accepted(
    engine: WatchedEngine, upstream: FakeUpstream, channels: Channels, text: str
) -> None:
    key = ConversationKey("test", "w1", channels())
    before = len(upstream.requests)
    sink = await turn(engine, key, text)  # Engine.handle never raises: this line is the check
    result = sink.result
    check_one_visible_outcome(sink)
    event(result.outcome.value)

    command = parse_command(text)
    checked = command.arg if command is not None else text  # a command's argument is kept
    accepted = refused = None
    try:
        accepted = validate_prompt(checked, max_chars=LIMIT) if checked else None
    except InvalidPrompt as exc:
        refused = exc.user_message
    if refused is not None:
        assert result.outcome is Outcome.REFUSED
        assert sink.notices == [refused]
        assert len(upstream.requests) == before, "refused input reached the upstream"
    elif command is not None:
        assert result.outcome is Outcome.COMMAND
        assert len(upstream.requests) == before
        accepted = None  # not a prompt: nothing to remember
    if UNREADABLE.search(checked):  # independently of the validator
        assert result.outcome is Outcome.REFUSED
    if accepted is not None and command is None:
        # Independently of the validator: nothing unreadable, nothing too long, nothing but
        # the edges taken away.
        assert not UNREADABLE.search(accepted)
        assert 0 < len(accepted) <= LIMIT
        head, found, tail = text.partition(accepted)
        assert found and all(c.isspace() or c in EDGE_INVISIBLE for c in head + tail)
        assert result.outcome is Outcome.COMPLETE, result
        assert len(upstream.requests) == before + 1
        assert sent_messages(upstream, -1)[-1] == ("user", accepted)
        assert sink.shown == DEFAULT_TEXT

    # The next turn in the same conversation is unharmed, and remembers the accepted text.
    follow = await turn(engine, key, FOLLOW_UP)
    assert follow.result.outcome is Outcome.COMPLETE, follow.result
    assert follow.shown == DEFAULT_TEXT
    history = sent_messages(upstream, -1)
    assert history[-1] == ("user", FOLLOW_UP)
    if accepted is not None and command is None:
        assert history[-3:-1] == [("user", accepted), ("assistant", DEFAULT_TEXT)]
    system = command.arg if command is not None and command.name == "system" else ""
    if refused is None and system and system.lower() != "default":
        assert history[0] == ("system", system)  # kept exactly as given
    else:
        assert history[0] == ("system", engine.settings.system_prompt)


def test_the_unreadable_pattern_matches_the_documented_categories() -> None:
    """The test's own definition of "unreadable", checked against Unicode's categories."""
    for code in range(0x00, 0xA0):
        char = chr(code)
        control = unicodedata.category(char) == "Cc" and char not in "\t\n"
        assert bool(UNREADABLE.search(char)) == control, hex(code)


@pytest.mark.parametrize("text", ["system \ud800", "system be terse\x00", "/system \x1b[2J"])
async def test_a_system_prompt_with_unreadable_characters_is_refused_like_a_prompt(
    engine: WatchedEngine, upstream: FakeUpstream, channels: Channels, text: str
) -> None:
    """Found by this suite (fixed since): `system` stored control characters and a lone
    surrogate failed in SQLite with a "try again" that could never work."""
    key = ConversationKey("test", "w1", channels())
    sink = await turn(engine, key, text)
    assert sink.notices == [UNREADABLE_SENTENCE]
    await turn(engine, key, FOLLOW_UP)
    assert not any(UNREADABLE.search(content) for _, content in sent_messages(upstream, -1))
