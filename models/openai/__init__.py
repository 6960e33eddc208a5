"""The OpenAI-compatible model server (OpenAI, Azure, Ollama, vLLM, llama.cpp, Groq, ...).

Its face for the composition root (bots/faces.py, ModelPackage): NAME, SETTINGS,
SECRET_SHAPES, configured(), open(), check().
"""

from __future__ import annotations

from core.checks import Check
from models.openai.llm import OpenAILLM
from models.openai.reach import check as _check
from models.openai.settings import OpenAISettings

__all__ = [
    "NAME",
    "SECRET_SHAPES",
    "SETTINGS",
    "OpenAILLM",
    "OpenAISettings",
    "check",
    "configured",
    "open",
]

NAME = "openai"
SETTINGS = OpenAISettings
SECRET_SHAPES = (r"sk-[A-Za-z0-9_\-]{16,}",)  # OpenAI-style API keys


def configured(settings: OpenAISettings) -> bool:
    """Whether a model server is named (OPENAI_API_KEY or OPENAI_BASE_URL)."""
    return settings.configured


def open(settings: OpenAISettings) -> OpenAILLM:
    """The one client of the process (its connection pool serves every stream)."""
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return OpenAILLM(
        api_key=key,
        base_url=settings.openai_base_url,
        connect_timeout=settings.connect_timeout,
        first_token_timeout=settings.first_token_timeout,
        idle_timeout=settings.idle_timeout,
        total_timeout=settings.total_timeout,
        max_retries=settings.upstream_retries,
    )


async def check(settings: OpenAISettings, model: str) -> Check:
    """A one-token completion with `model`."""
    return await _check(settings, model)
