"""The OpenAI-compatible model server's settings: where it is, its key, its deadlines."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from core.config import AdapterSettings


class OpenAISettings(AdapterSettings):
    """OPENAI_API_KEY / OPENAI_BASE_URL, and how long parley waits for the server."""

    title: ClassVar[str] = "model server"

    openai_api_key: SecretStr | None = Field(
        None,
        alias="OPENAI_API_KEY",
        description="API key of the model server (most local ones need none)",
    )
    openai_base_url: str | None = Field(
        None,
        alias="OPENAI_BASE_URL",
        description="an OpenAI-compatible server's /v1 address (unset: OpenAI)",
    )
    connect_timeout: float = Field(
        10.0, alias="PARLEY_CONNECT_TIMEOUT", gt=0, description="seconds to connect to it"
    )
    first_token_timeout: float = Field(
        60.0,
        alias="PARLEY_FIRST_TOKEN_TIMEOUT",
        gt=0,
        description="seconds to wait for an answer's first words",
    )
    idle_timeout: float = Field(
        60.0,
        alias="PARLEY_STREAM_IDLE_TIMEOUT",
        gt=0,
        description="seconds of silence tolerated mid-answer",
    )
    total_timeout: float = Field(
        600.0, alias="PARLEY_TOTAL_TIMEOUT", gt=0, description="seconds one answer may take in all"
    )
    upstream_retries: int = Field(
        2,
        alias="PARLEY_UPSTREAM_RETRIES",
        ge=0,
        le=10,
        description="retries on connection errors and 5xx",
    )

    @property
    def configured(self) -> bool:
        """Whether a model server is named at all (a key for OpenAI, or a URL)."""
        return self.openai_api_key is not None or self.openai_base_url is not None
