"""How long a remote service asked parley to wait: one reader of the headers that say so,
for every adapter (the model server's 429/503, Slack's and Discord's 429s)."""

from __future__ import annotations

import contextlib
import email.utils
import time
from collections.abc import Mapping, Sequence
from typing import Any


def retry_after(headers: Mapping[str, Any], *, first: Sequence[str] = ()) -> float | None:
    """Seconds to wait (never negative), or None when no header says.

    Read in order: the headers in `first` (plain seconds, e.g. Discord's precise
    X-RateLimit-Reset-After), then `Retry-After-Ms`, then `Retry-After` (seconds or an HTTP
    date). A header that cannot be read is skipped. `headers` should look names up without
    regard to case (aiohttp's and httpx's do); the spellings above are tried as written
    and in lower case."""
    for name in first:
        with contextlib.suppress(TypeError, ValueError):
            if (value := _get(headers, name)) is not None:
                return max(0.0, float(value))
    with contextlib.suppress(TypeError, ValueError):
        if (millis := _get(headers, "Retry-After-Ms")) is not None:
            return max(0.0, float(millis) / 1000)
    value = _get(headers, "Retry-After")
    if value is None:
        return None
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, float(value))
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, email.utils.parsedate_to_datetime(str(value)).timestamp() - time.time())
    return None


def _get(headers: Mapping[str, Any], name: str) -> Any:
    value = headers.get(name)
    return headers.get(name.lower()) if value is None else value
