"""Logging: JSON lines with the turn's ids, and no secret ever reaches a line."""

from __future__ import annotations

import io
import json
import logging

import structlog

from bots.config import secret_shapes
from core.logs import REDACTED, SecretRedactor, configure_logging

OPENAI_KEY = "sk-test-PARLEYSECRET0123456789abcdef"
SLACK_TOKEN = "xoxb-1111-2222-PARLEYSECRETslack"
DISCORD_TOKEN = "MTAxMjM0NTY3ODkwMTIzNDU2Nw.GhIjKl.PARLEYSECRETdiscordtokenvalue012345"


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_lines_carry_bound_turn_ids() -> None:
    out = io.StringIO()
    configure_logging(level="info", fmt="json", shapes=secret_shapes(), stream=out)
    with structlog.contextvars.bound_contextvars(request_id="r1", platform="slack", channel="C1"):
        structlog.get_logger("t").info("turn_done", outcome="complete")
    (line,) = _lines(out)
    assert line["event"] == "turn_done"
    assert line["request_id"] == "r1" and line["platform"] == "slack" and line["channel"] == "C1"
    assert line["level"] == "info"


def test_configured_and_shaped_secrets_are_redacted_everywhere() -> None:
    out = io.StringIO()
    configure_logging(
        level="debug",
        fmt="json",
        secrets=["my-api-token-value"],
        shapes=secret_shapes(),
        stream=out,
    )
    logger = structlog.get_logger("t")
    logger.info("call", url=f"https://x/?token={SLACK_TOKEN}", headers={"auth": OPENAI_KEY})
    logger.warning("discord", detail=[DISCORD_TOKEN, "Bearer my-api-token-value"])
    try:
        raise RuntimeError(f"failed with {OPENAI_KEY}")
    except RuntimeError:
        logger.exception("boom")
    logging.getLogger("slack_sdk").warning("library line with %s", SLACK_TOKEN)
    text = out.getvalue()
    for secret in (OPENAI_KEY, SLACK_TOKEN, DISCORD_TOKEN, "my-api-token-value"):
        assert secret not in text
    assert text.count(REDACTED) >= 5
    assert len(_lines(out)) == 4


def test_redactor_leaves_ordinary_text_alone() -> None:
    redactor = SecretRedactor(["hunter2-secret"], shapes=secret_shapes())
    text = "The sky is blue; skip-this is fine; xoxo hugs"
    assert redactor.scrub(text) == text
    assert redactor.scrub("pw hunter2-secret") == f"pw {REDACTED}"


def test_every_token_shape_and_token_carrying_url_is_scrubbed() -> None:
    redactor = SecretRedactor(shapes=secret_shapes())
    leaks = {
        "xoxe.xoxp-1-Mi0yLTExMjM0NTY3ODkw-PARLEYSECRETrefresh": "a Slack refresh token",
        "xoxe-1-My0xLTEyMzQ1Njc4OTAxMjM0NTY3-PARLEYSECRET": "a Slack token rotation token",
        "https://discord.com/api/v10/webhooks/1100000000000000001/aW50ZXJhY3Rpb246MTIzNDU2"
        "Nzg5MDpQQVJMRVlTRUNSRVQ/messages/@original": "a Discord interaction token",
        "https://hooks.slack.com/commands/T0001/12345/PARLEYSECRETresponseurl": "a response_url",
        "https://hooks.slack.com/services/T0001/B0001/PARLEYSECRETwebhook": "a Slack webhook",
        "https://api.example.com/v1/models?api_key=PARLEYSECRETquery&x=1": "a key in a query",
        "postgresql://parley:PARLEYSECRETpassword@db:5432/parley": "a password in a URL",
        "Authorization: Bot MTAxMjM0NTY3ODkw.PARLEYSECRET": "a Discord bot header",
    }
    for text, what in leaks.items():
        assert "PARLEYSECRET" not in redactor.scrub(text), what
    kept = redactor.scrub(next(iter(k for k in leaks if "webhooks" in k)))
    assert kept.startswith("https://discord.com/api/v10/webhooks/1100000000000000001/")


def test_secrets_inside_containers_and_other_objects_are_scrubbed() -> None:
    class Url:  # e.g. yarl.URL, an aiohttp request: logged as the object itself
        def __str__(self) -> str:
            return "https://hooks.slack.com/commands/T1/2/PARLEYSECRETobject"

    out = io.StringIO()
    configure_logging(level="info", fmt="json", shapes=secret_shapes(), stream=out)
    structlog.get_logger("t").info(
        "call",
        where=Url(),
        nested={"inner": [("x", {SLACK_TOKEN})]},
        count=3,
        ok=True,
    )
    text = out.getvalue()
    assert "PARLEYSECRET" not in text
    (line,) = _lines(out)
    assert line["count"] == 3 and line["ok"] is True  # numbers stay numbers
