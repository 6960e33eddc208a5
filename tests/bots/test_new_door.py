"""Adding a front door touches its own package and one line of bots/registry.py: shown with
tests/support/webhook_door.py, registered the way that line would (DOORS gains it)."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bots import registry
from bots.doctor import run_doctor
from bots.http.server import HttpServer
from bots.main import _front_doors, _parser, close_engine, open_engine
from tests.fakes.upstream import FakeUpstream, Script
from tests.support import webhook_door
from tests.support.engine import make_settings

TOKEN = "whk_0123456789abcdef"


@pytest.fixture(autouse=True)
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one line: `DOORS = (slack, discord, webhook_door)`."""
    monkeypatch.setattr(registry, "DOORS", (*registry.DOORS, webhook_door))


def test_its_variables_are_in_run_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["run", "--help"])
    shown = capsys.readouterr().out
    assert "WEBHOOK_TOKEN" in shown
    assert "the token a caller must send" in shown


def test_its_token_is_scrubbed_from_logs_set_or_not(upstream: FakeUpstream, tmp_path: Path) -> None:
    config = make_settings(upstream, tmp_path / "parley.db", webhook_token=TOKEN)
    scrub = config.redactor()
    assert TOKEN not in scrub(None, "info", {"event": f"got {TOKEN}"})["event"]
    unset = make_settings(upstream, tmp_path / "parley.db").redactor()
    other = "whk_SomeoneElsesToken99"
    assert other not in unset(None, "info", {"event": f"saw {other}"})["event"]


async def test_doctor_checks_it(upstream: FakeUpstream, tmp_path: Path) -> None:
    config = make_settings(upstream, tmp_path / "parley.db", webhook_token=TOKEN)
    out = io.StringIO()
    await run_doctor(config, out)
    assert "[ok  ] webhook: a token is set" in out.getvalue()


@pytest.fixture
async def served(upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[str]:
    """parley's composition root building the door from its settings, its routes mounted
    on the one HTTP server (what `parley run` does)."""
    config = make_settings(upstream, tmp_path / "parley.db", webhook_token=TOKEN, http_port=0)
    engine = await open_engine(config)
    doors = _front_doors(engine, config)
    assert list(doors) == ["webhook"]  # neither Slack nor Discord is configured here
    server = HttpServer(engine, config.http, readiness={})
    for door in doors.values():
        server.app.add_routes(door.routes())
    await server.start()
    for door in doors.values():
        await door.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        for door in doors.values():
            await door.stop(grace=1)
        await server.stop()
        await close_engine(engine)


async def test_it_answers_through_the_engine_and_remembers(
    served: str, upstream: FakeUpstream
) -> None:
    upstream.script(Script(text="Noted: blue."), Script(text="Blue."))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{served}/webhook/ops", json={"user": "u1", "text": "x"}) as r:
            assert r.status == 401  # no token
        said = {"user": "u1", "text": "my colour is blue"}
        async with http.post(f"{served}/webhook/ops", json=said, headers=auth) as r:
            assert await r.json() == {"reply": "Noted: blue.", "outcome": "complete"}
        asked = {"user": "u1", "text": "what is my colour?"}
        async with http.post(f"{served}/webhook/ops", json=asked, headers=auth) as r:
            assert (await r.json())["reply"] == "Blue."
    assert [m["content"] for m in upstream.requests[-1]["body"]["messages"][1:]] == [
        "my colour is blue",
        "Noted: blue.",
        "what is my colour?",
    ]
    logging.getLogger(__name__).debug("done")
