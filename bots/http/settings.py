"""The HTTP server's settings: where it listens, the chat API's token, what it accepts."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from core.config import AdapterSettings


class HttpSettings(AdapterSettings):
    """Health, readiness, metrics, Slack's HTTP events and the chat API share this server."""

    title: ClassVar[str] = "http"

    http_host: str = Field(
        "127.0.0.1", alias="PARLEY_HTTP_HOST", description="address of the HTTP server"
    )
    http_port: int = Field(8080, alias="PARLEY_HTTP_PORT", ge=0, le=65535, description="its port")
    api_token: SecretStr | None = Field(
        None, alias="PARLEY_API_TOKEN", description="turns the chat API on (bearer token)"
    )
    api_max_body_bytes: int = Field(
        65536, alias="PARLEY_API_MAX_BODY_BYTES", ge=1024, description="largest request body"
    )
    cors_origins: str = Field(
        "", alias="PARLEY_CORS_ORIGINS", description="browser origins allowed to call the API"
    )

    @property
    def cors_origin_list(self) -> list[str]:
        """Origins allowed to call the chat API from a browser (PARLEY_CORS_ORIGINS)."""
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]
