"""parley's own exceptions: each carries the sentence a user sees."""

from __future__ import annotations


class ParleyError(Exception):
    """Base class: `user_message` is safe to show in a chat (no secrets, no stack)."""

    user_message = "Something went wrong on my side. Please try again."

    def __init__(self, user_message: str | None = None, *, detail: str = "") -> None:
        if user_message is not None:
            self.user_message = user_message
        self.detail = detail
        super().__init__(detail or self.user_message)


def _duration(seconds: float) -> str:
    """`seconds` in words: "7 seconds", "2 minutes"."""
    if seconds >= 90:
        return f"{round(seconds / 60)} minutes"
    whole = max(1, round(seconds))
    return f"{whole} second" + ("" if whole == 1 else "s")


class ConfigError(ParleyError):
    """A setting is missing or invalid; stops the process at start."""


class UpstreamError(ParleyError):
    """The model server failed; subclasses say how.

    `overloaded`: the server said "come back later" (429, 503), so the turn waits in line
    and asks again rather than failing; `retry_after` is when it said to (None: unsaid).
    """

    user_message = "The model server returned an error. Please try again in a moment."
    overloaded = False
    retry_after: float | None = None


class UpstreamUnreachable(UpstreamError):
    user_message = "I can't reach the model server right now. Please try again in a minute."


class UpstreamAuthError(UpstreamError):
    user_message = (
        "The model server rejected parley's API key. An admin needs to check OPENAI_API_KEY."
    )


class UpstreamModelNotFound(UpstreamError):
    user_message = "The model server doesn't know this model. Pick another one with `model NAME`."


class UpstreamRateLimited(UpstreamError):
    """The model server asked us to slow down."""

    overloaded = True

    def __init__(self, retry_after: float | None = None, *, detail: str = "") -> None:
        self.retry_after = retry_after
        when = f"in about {_duration(retry_after)}" if retry_after else "in a minute"
        super().__init__(
            f"The model server is busy (rate limited). Please try again {when}.", detail=detail
        )


class UpstreamUnavailable(UpstreamError):
    user_message = "The model server is having trouble (server error). Please try again shortly."


class UpstreamOverloaded(UpstreamUnavailable):
    """503: the model server is overloaded for now (worth waiting for, unlike other 5xx)."""

    overloaded = True

    def __init__(self, retry_after: float | None = None, *, detail: str = "") -> None:
        self.retry_after = retry_after
        super().__init__(detail=detail)


class UpstreamQuotaExceeded(UpstreamError):
    """429 with `insufficient_quota`: the account ran out; waiting does not help."""

    user_message = (
        "The model server says parley's account has run out of quota or credit. An admin "
        "needs to check the model provider's billing."
    )


class UpstreamBadRequest(UpstreamError):
    user_message = "The model server refused this request. Try rephrasing, or `reset` the chat."


class UpstreamTimeout(UpstreamError):
    user_message = "The model took too long to answer. Please try again."


class StreamDropped(UpstreamError):
    user_message = "The model's answer was cut off before it finished. Please try again."


class ContextTooLong(UpstreamError):
    user_message = "This conversation is too long for the model. Use `reset` to start fresh."


class QueueTimeout(ParleyError):
    """A turn waited in line (and for the model server) longer than PARLEY_QUEUE_TIMEOUT."""

    def __init__(self, waited: float, *, detail: str = "") -> None:
        self.waited = waited
        super().__init__(
            f"I couldn't get to this within {_duration(waited)}: a lot of people are asking "
            "right now. Please ask again in a little while.",
            detail=detail,
        )


class StorageError(ParleyError):
    """The memory store failed (locked, full, unreachable); stores wrap their driver's errors."""

    user_message = "I couldn't read or save this conversation's memory just now. Please try again."


class PlatformRateLimited(Exception):
    """Raised by a ReplySink when the platform says "slow down" (HTTP 429)."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"rate limited, retry after {retry_after:.2f}s")
