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


class ConfigError(ParleyError):
    """A setting is missing or invalid; stops the process at start."""


class UpstreamError(ParleyError):
    """The model server failed; subclasses say how."""

    user_message = "The model server returned an error. Please try again in a moment."


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

    def __init__(self, retry_after: float | None = None, *, detail: str = "") -> None:
        self.retry_after = retry_after
        when = f"in about {max(1, round(retry_after))} seconds" if retry_after else "in a minute"
        super().__init__(
            f"The model server is busy (rate limited). Please try again {when}.", detail=detail
        )


class UpstreamUnavailable(UpstreamError):
    user_message = "The model server is having trouble (server error). Please try again shortly."


class UpstreamBadRequest(UpstreamError):
    user_message = "The model server refused this request. Try rephrasing, or `reset` the chat."


class UpstreamTimeout(UpstreamError):
    user_message = "The model took too long to answer. Please try again."


class StreamDropped(UpstreamError):
    user_message = "The model's answer was cut off before it finished. Please try again."


class ContextTooLong(UpstreamError):
    user_message = "This conversation is too long for the model. Use `reset` to start fresh."


class StorageError(ParleyError):
    """The memory store failed (locked, full, unreachable); stores wrap their driver's errors."""

    user_message = "I couldn't read or save this conversation's memory just now. Please try again."


class PlatformRateLimited(Exception):
    """Raised by a ReplySink when the platform says "slow down" (HTTP 429)."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"rate limited, retry after {retry_after:.2f}s")
