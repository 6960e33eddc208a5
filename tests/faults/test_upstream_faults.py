"""Every way the model server fails, through the real front doors: the person sees a clear
sentence in the platform message, nothing already said is lost from memory (what had streamed
is kept, marked partial), and the next message in the same channel is answered."""

from __future__ import annotations

import pytest

from tests.fakes.upstream import DEFAULT_TEXT, FakeUpstream, Script
from tests.faults.conftest import OpenChat, next_turn_works

PLATFORMS = ["slack", "discord"]
PARTIAL = DEFAULT_TEXT[:8]  # two 4-character chunks come before a mid-stream fault

FAULTS = [
    pytest.param(None, "can't reach the model server", "", id="connection-refused"),
    pytest.param(Script(fault="hang"), "took too long", "", id="hang-before-first-token"),
    pytest.param(Script(fault="hang_mid"), "took too long", PARTIAL, id="hang-mid-stream"),
    pytest.param(Script(fault="drop_mid"), "cut off", PARTIAL, id="drop-mid-stream"),
    pytest.param(Script(status=401), "rejected parley's API key", "", id="401"),
    pytest.param(Script(status=404), "doesn't know this model", "", id="404"),
    # A 429 is waited out while its Retry-After fits PARLEY_QUEUE_TIMEOUT (120 s); past it:
    pytest.param(Script(status=429, retry_after=600), "again in about 10 minutes", "", id="429"),
    pytest.param(Script(status=500), "server error", "", id="500"),
    pytest.param(Script(fault="malformed"), "cut off", PARTIAL, id="malformed-sse"),
]


def sent_to_model(upstream: FakeUpstream) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in upstream.requests[-1]["body"]["messages"]]


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize(("script", "says", "partial"), FAULTS)
async def test_an_upstream_fault_is_a_sentence_loses_nothing_and_the_next_turn_works(
    open_chat: OpenChat,
    upstream: FakeUpstream,
    platform: str,
    script: Script | None,
    says: str,
    partial: str,
) -> None:
    chat = await open_chat(platform)
    if script is None:
        await upstream.stop()  # nothing listens on its port any more: connection refused
    else:
        upstream.script(script)

    shown = await chat.ask("hello?")
    await chat.answered()
    await chat.until(lambda: says in shown())
    if partial:
        assert shown().startswith(partial)  # what had streamed stays on screen
    else:
        assert DEFAULT_TEXT[:4] not in shown()
    assert chat.rows() == [
        ("user", "hello?", "complete"),
        ("assistant", partial, "partial" if partial else "failed"),
    ]

    if script is None:
        await upstream.start()  # back on the same port
    await next_turn_works(chat, upstream)
    remembered = sent_to_model(upstream)
    assert ("user", "hello?") in remembered
    if partial:
        assert ("assistant", partial) in remembered
