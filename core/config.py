"""Settings from the environment (and an optional `.env`), checked once at start.

Every adapter (a front door, a store, a model server) owns a settings class of its own,
beside its code, built on `AdapterSettings`; the engine's are `EngineSettings`, here. The
variable names are an interface: deployments and external tests set them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError

DEFAULT_SYSTEM_PROMPT = (
    "You are parley, a helpful assistant in a team chat. Answer clearly and concisely; "
    "use Markdown where it helps."
)


class AdapterSettings(BaseSettings):
    """What every settings class shares: the environment and `.env`, unknown variables
    ignored, and the help and scrubbing every class gets from its own fields."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
    )
    title: ClassVar[str] = "settings"
    """The heading of this class's settings in `--help`."""

    def secrets(self) -> list[str]:
        """Every secret value configured (its SecretStr fields), for the log scrubber."""
        found = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                found.append(value.get_secret_value())
        return found


class EngineSettings(AdapterSettings):
    """The engine's own knobs: conversations, streaming, limits, the line, logging."""

    title: ClassVar[str] = "conversation, streaming and limits"

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
    flush_interval: float = Field(
        1.0, alias="PARLEY_FLUSH_INTERVAL", gt=0, le=60, description="seconds between edits"
    )
    placeholder_after: float = Field(
        0.4,
        alias="PARLEY_PLACEHOLDER_AFTER",
        ge=0,
        le=30,
        description="seconds before a placeholder shows",
    )
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
    shutdown_grace: float = Field(
        20.0,
        alias="PARLEY_SHUTDOWN_GRACE",
        ge=0,
        description="seconds replies may take to finish on SIGTERM",
    )
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


S = TypeVar("S", bound=AdapterSettings)


def load(cls: type[S], **overrides: Any) -> S:
    """Read one settings class, or raise ConfigError with one clear line (no traceback)."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise ConfigError(_explain(cls, exc.errors()[0])) from None


def describe(classes: Iterable[type[AdapterSettings]]) -> str:
    """Help text for the settings of `classes`: variable, meaning and default, by heading."""
    lines = []
    for cls in classes:
        lines.append(f"{cls.title}:")
        for name, field in cls.model_fields.items():
            default = field.default
            shown = "unset" if default in (None, "") else str(default)
            if default == DEFAULT_SYSTEM_PROMPT:
                shown = "a short helpful-assistant prompt"
            lines.append(f"  {field.alias or name:<36} {field.description} [{shown}]")
    return "\n".join(lines)


def _explain(cls: type[AdapterSettings], error: Any) -> str:
    """One sentence for one pydantic error, naming the variable and what is allowed."""
    name = str(error["loc"][0]) if error["loc"] else "setting"
    field = cls.model_fields.get(name)
    if field is None:  # the error names the alias, as it came from the environment
        field = next((f for f in cls.model_fields.values() if f.alias == name), None)
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
    elif error["type"] == "value_error":
        return f"parley: invalid setting {env}: {ctx.get('error', error['msg'])!s}"
    else:
        allowed = str(error["msg"]).lower()
    return f"parley: invalid setting {env}{value}: expected {allowed}"
