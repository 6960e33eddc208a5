"""Settings from the environment (and an optional `.env`), checked once at start.

The variable names are an interface: deployments and external tests set them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError

DEFAULT_SYSTEM_PROMPT = (
    "You are parley, a helpful assistant in a team chat. Answer clearly and concisely; "
    "use Markdown where it helps."
)


class Settings(BaseSettings):
    """Every knob parley has; see the README's configuration table."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
    )

    # model server
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
    model: str = Field(
        "gpt-4o-mini", alias="PARLEY_MODEL", min_length=1, description="default model"
    )
    models: str = Field(
        "", alias="PARLEY_MODELS", description="comma-separated models a channel may switch to"
    )
    admins: str = Field(
        "",
        alias="PARLEY_ADMINS",
        description="comma-separated user ids who may change any channel's settings",
    )
    max_tokens: int = Field(
        1024, alias="PARLEY_MAX_TOKENS", ge=1, description="longest answer, in tokens"
    )
    connect_timeout: float = Field(
        10.0,
        alias="PARLEY_CONNECT_TIMEOUT",
        gt=0,
        description="seconds to connect to the model server",
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

    # conversation
    database: str = Field(
        "./parley.db",
        alias="PARLEY_DATABASE",
        min_length=1,
        description="the SQLite file holding every conversation",
    )
    system_prompt: str = Field(
        DEFAULT_SYSTEM_PROMPT, alias="PARLEY_SYSTEM_PROMPT", description="default system prompt"
    )
    history_turns: int = Field(
        20, alias="PARLEY_HISTORY_TURNS", ge=0, description="exchanges kept in the context"
    )
    history_tokens: int = Field(
        8000, alias="PARLEY_HISTORY_TOKENS", ge=100, description="token budget of the context"
    )
    max_prompt_chars: int = Field(
        4000, alias="PARLEY_MAX_PROMPT_CHARS", ge=1, description="longest message a person may send"
    )
    retention_days: float = Field(
        0,
        alias="PARLEY_RETENTION_DAYS",
        ge=0,
        description="delete messages older than this many days (0: keep all)",
    )

    # streaming
    flush_interval: float = Field(
        1.0,
        alias="PARLEY_FLUSH_INTERVAL",
        gt=0,
        le=60,
        description="seconds between edits of a reply",
    )
    placeholder_after: float = Field(
        0.4,
        alias="PARLEY_PLACEHOLDER_AFTER",
        ge=0,
        le=30,
        description="seconds before a placeholder shows",
    )
    slack_updates_per_minute: int = Field(
        50,
        alias="PARLEY_SLACK_UPDATES_PER_MINUTE",
        ge=0,
        description="Slack chat.update budget per workspace (0: none)",
    )
    discord_requests_per_second: int = Field(
        50,
        alias="PARLEY_DISCORD_REQUESTS_PER_SECOND",
        ge=0,
        description="Discord request budget of the bot (0: none)",
    )

    # limits
    rate_limit_per_minute: float = Field(
        10, alias="PARLEY_RATE_LIMIT_PER_MINUTE", gt=0, description="messages a minute per person"
    )
    rate_limit_burst: int = Field(
        5, alias="PARLEY_RATE_LIMIT_BURST", ge=1, description="messages a person may send at once"
    )
    max_concurrent_streams: int = Field(
        256,
        alias="PARLEY_MAX_CONCURRENT_STREAMS",
        ge=1,
        description="answers streaming at once; the rest wait in line",
    )
    queue_timeout: float = Field(
        120.0, alias="PARLEY_QUEUE_TIMEOUT", gt=0, description="seconds a message may wait in line"
    )
    max_queued: int = Field(
        1000, alias="PARLEY_MAX_QUEUED", ge=0, description="messages that may wait in line"
    )

    # logging
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", alias="PARLEY_LOG_LEVEL", description="debug, info, warning or error"
    )
    log_format: Literal["json", "console"] = Field(
        "json", alias="PARLEY_LOG_FORMAT", description="json lines, or console for people"
    )
    log_file: str | None = Field(
        None,
        alias="PARLEY_LOG_FILE",
        description="where the terminal chat's logs go (unset: parley.log beside the database)",
    )

    # Slack
    slack_bot_token: SecretStr | None = Field(
        None, alias="SLACK_BOT_TOKEN", description="Bot User OAuth Token (xoxb-...)"
    )
    slack_app_token: SecretStr | None = Field(
        None, alias="SLACK_APP_TOKEN", description="app-level token (xapp-...): Socket Mode"
    )
    slack_signing_secret: SecretStr | None = Field(
        None, alias="SLACK_SIGNING_SECRET", description="the app's signing secret: HTTP Events API"
    )
    slack_api_url: str = Field(
        "https://slack.com/api/", alias="SLACK_API_URL", description="Slack's Web API base"
    )

    # Discord
    discord_bot_token: SecretStr | None = Field(
        None, alias="DISCORD_BOT_TOKEN", description="the bot's token"
    )
    discord_api_url: str = Field(
        "https://discord.com/api/v10", alias="DISCORD_API_URL", description="Discord's REST base"
    )
    discord_guild_id: int | None = Field(
        None,
        alias="PARLEY_DISCORD_GUILD_ID",
        description="register slash commands to this server only",
    )

    # HTTP server and API
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
    shutdown_grace: float = Field(
        20.0,
        alias="PARLEY_SHUTDOWN_GRACE",
        ge=0,
        description="seconds replies may take to finish on SIGTERM",
    )

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @property
    def model_names(self) -> list[str]:
        """Configured model choices (PARLEY_MODELS), the default model first."""
        names = [self.model] + [m.strip() for m in self.models.split(",") if m.strip()]
        return list(dict.fromkeys(names))

    @property
    def admin_ids(self) -> frozenset[str]:
        """PARLEY_ADMINS as a set of user ids (Slack U..., Discord snowflakes)."""
        return frozenset(a.strip() for a in self.admins.split(",") if a.strip())

    @property
    def cors_origin_list(self) -> list[str]:
        """Origins allowed to call the chat API from a browser (PARLEY_CORS_ORIGINS)."""
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def log_path(self) -> Path:
        """Where the terminal chat writes its logs: PARLEY_LOG_FILE, else beside the database."""
        if self.log_file:
            return Path(self.log_file)
        return Path(self.database).with_name("parley.log")

    @property
    def upstream_configured(self) -> bool:
        return self.openai_api_key is not None or self.openai_base_url is not None

    def secrets(self) -> list[str]:
        """Every secret value configured, so the log redactor can scrub them."""
        fields = (
            self.openai_api_key,
            self.slack_bot_token,
            self.slack_app_token,
            self.slack_signing_secret,
            self.discord_bot_token,
            self.api_token,
        )
        return [f.get_secret_value() for f in fields if f is not None and f.get_secret_value()]


GROUPS: dict[str, tuple[str, ...]] = {
    "model server": (
        "openai_api_key",
        "openai_base_url",
        "model",
        "models",
        "max_tokens",
        "connect_timeout",
        "first_token_timeout",
        "idle_timeout",
        "total_timeout",
        "upstream_retries",
    ),
    "conversation": (
        "admins",
        "database",
        "system_prompt",
        "history_turns",
        "history_tokens",
        "max_prompt_chars",
        "retention_days",
    ),
    "streaming": (
        "flush_interval",
        "placeholder_after",
        "slack_updates_per_minute",
        "discord_requests_per_second",
    ),
    "limits": (
        "rate_limit_per_minute",
        "rate_limit_burst",
        "max_concurrent_streams",
        "queue_timeout",
        "max_queued",
    ),
    "logging": ("log_level", "log_format", "log_file"),
    "slack": ("slack_bot_token", "slack_app_token", "slack_signing_secret", "slack_api_url"),
    "discord": ("discord_bot_token", "discord_api_url", "discord_guild_id"),
    "http": (
        "http_host",
        "http_port",
        "api_token",
        "api_max_body_bytes",
        "cors_origins",
        "shutdown_grace",
    ),
}
"""Every setting in one group; a command's --help lists the groups it reads."""


def describe_settings(groups: tuple[str, ...]) -> str:
    """The settings of `groups` as help text: variable, default, meaning (from the fields)."""
    lines = []
    for group in groups:
        lines.append(f"{group}:")
        for name in GROUPS[group]:
            field = Settings.model_fields[name]
            default = field.default
            shown = "unset" if default in (None, "") else str(default)
            if name == "system_prompt":
                shown = "a short helpful-assistant prompt"
            lines.append(f"  {field.alias:<36} {field.description} [{shown}]")
    return "\n".join(lines)


def _explain(error: Any) -> str:
    """One sentence for one pydantic error, naming the variable and what is allowed."""
    name = str(error["loc"][0]) if error["loc"] else "setting"
    field = Settings.model_fields.get(name)
    env = field.alias if field is not None and field.alias else name
    secret = field is not None and "SecretStr" in str(field.annotation)
    value = "" if secret else f"={error.get('input')!r}"
    ctx = error.get("ctx") or {}
    if error["type"] in ("greater_than", "greater_than_equal", "less_than_equal"):
        raw = next(iter(ctx.values()), "")
        limit = f"{raw:g}" if isinstance(raw, float) else raw
        words = {
            "greater_than": f"greater than {limit}",
            "greater_than_equal": f"at least {limit}",
            "less_than_equal": f"at most {limit}",
        }
        allowed = f"a number {words[error['type']]}"
    elif error["type"] == "literal_error":
        allowed = f"one of {ctx.get('expected', '')}"
    elif error["type"] in ("float_parsing", "float_type"):
        allowed = "a number"
    elif error["type"] in ("int_parsing", "int_type", "int_from_float"):
        allowed = "a whole number"
    else:
        allowed = str(error["msg"]).lower()
    return f"parley: invalid setting {env}{value}: expected {allowed}"


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, or raise ConfigError with one clear line (no traceback)."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_explain(exc.errors()[0])) from None
