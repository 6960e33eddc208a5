"""What `parley doctor` (and `parley init`) say of the model server: one tiny completion."""

from __future__ import annotations

from core.checks import Check
from core.errors import ParleyError
from core.model import ChatMessage, Role
from models.openai.llm import OpenAILLM
from models.openai.settings import OpenAISettings

TIMEOUT = 10.0


async def check(settings: OpenAISettings, model: str) -> Check:
    """Ask the model server for a one-token answer (also `parley init`'s check)."""
    where = settings.openai_base_url or "OpenAI"
    if not settings.configured:
        return Check(
            "model server",
            False,
            "not configured",
            "set OPENAI_API_KEY for OpenAI, or OPENAI_BASE_URL for a local server",
        )
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    llm = OpenAILLM(
        api_key=key,
        base_url=settings.openai_base_url,
        connect_timeout=min(settings.connect_timeout, TIMEOUT),
        first_token_timeout=TIMEOUT,
        idle_timeout=TIMEOUT,
        total_timeout=TIMEOUT,
        max_retries=0,
    )
    try:
        async for _ in llm.stream([ChatMessage(Role.USER, "Say OK.")], model=model, max_tokens=1):
            pass
    except ParleyError as exc:
        return Check(
            "model server", False, f"{where}: {exc.detail or exc.user_message}", _upstream_fix(exc)
        )
    finally:
        await llm.close()
    return Check("model server", True, f"{where} answers with model {model}")


def _upstream_fix(exc: ParleyError) -> str:
    name = type(exc).__name__
    return {
        "UpstreamAuthError": "check OPENAI_API_KEY",
        "UpstreamModelNotFound": "set PARLEY_MODEL to a model the server serves",
        "UpstreamUnreachable": "start the server, or check OPENAI_BASE_URL (usually ending in /v1)",
    }.get(name, "check OPENAI_BASE_URL and the server's logs")
