"""Structured logging: JSON lines by default, one request_id per turn, secrets scrubbed."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "[redacted]"

# Shapes of secrets caught even when nobody configured them here; each adapter adds the
# shapes of its own (its SECRET_SHAPES: an API key's, a platform token's). A shape may name
# a group `keep`: that part stays (a URL's readable path), the rest becomes REDACTED.
GENERIC_SHAPES = (
    r"(?i:bearer|bot)\s+[A-Za-z0-9._\-]{8,}",  # Authorization header values
    # a secret in a URL's query, or user:password@ before its host
    r"(?P<keep>[?&](?i:token|access_token|refresh_token|key|api_key|apikey|secret|sig|"
    r"signature|code|password)=)[^&\s\"'<>]+",
    r"(?P<keep>://)[^/\s:@\"'<>]+:[^/\s@\"'<>]+(?=@)",
)


def _keep(match: re.Match[str]) -> str:
    kept = next((part for part in match.groupdict().values() if part), "")
    return kept + REDACTED


class SecretRedactor:
    """A structlog processor that scrubs known secret values and secret-shaped strings."""

    def __init__(self, secrets: Iterable[str] = (), *, shapes: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        numbered = (
            f"(?:{shape.replace('(?P<keep>', f'(?P<keep{i}>')})"
            for i, shape in enumerate((*GENERIC_SHAPES, *shapes))
        )
        self._shapes = re.compile("|".join(numbered))

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return self._shapes.sub(_keep, text)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, dict):
            return {self._clean(k): self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._clean(v) for v in value]
        if isinstance(value, BaseException):
            return self.scrub(repr(value))
        # Anything else (a URL object, a request, a model) is rendered as text: looked into.
        text = str(value)
        cleaned = self.scrub(text)
        return value if cleaned == text else cleaned

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        return {key: self._clean(value) for key, value in event.items()}


def configure_logging(
    *,
    level: str = "info",
    fmt: str = "json",
    secrets: Iterable[str] = (),
    shapes: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Set up structlog (and route the standard library's loggers through it); `shapes`:
    the secret shapes the adapters name."""
    redactor = SecretRedactor(secrets, shapes=shapes)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redactor,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    out = stream or sys.stderr
    numeric = getattr(logging, level.upper(), logging.INFO)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # Libraries (slack_bolt, discord.py, aiohttp, openai) log through `logging`.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO) if numeric < logging.INFO else numeric)
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "openai._base_client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
