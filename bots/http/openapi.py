"""The OpenAPI 3.1 description of parley's HTTP endpoints, served at /openapi.json.

Streamed replies are described as `text/event-stream`; OpenAPI 3.1 has no schema for
single events, so `x-events` maps each event name to the schema of its `data`.
"""

from __future__ import annotations

import copy
from typing import Any

from bots.http.chat import CHAT_PATH, DEFAULT_CHANNEL, MAX_CHANNEL_CHARS, WS_PATH

ERROR_CODES = [
    "bad_request",
    "invalid_message",
    "unauthorized",
    "origin_not_allowed",
    "not_found",
    "method_not_allowed",
    "too_large",
    "rate_limited",
    "busy",
    "shutting_down",
    "upstream_error",
    "upstream_timeout",
    "turn_failed",
    "internal_error",
    "http_error",
    "request_timeout",
]
EVENTS = {
    "start": "StartEvent",
    "waiting": "WaitingEvent",
    "delta": "DeltaEvent",
    "done": "ChatReply",
    "error": "StreamError",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error(description: str, *, retry: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": _json(_ref("Error"))}
    if retry:
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
        }
    return response


def _obj(required: list[str], properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    schema = {"type": "object", "required": required, "properties": properties}
    return {**schema, "additionalProperties": False, **extra}


SCHEMAS: dict[str, Any] = {
    "ChatRequest": _obj(
        ["message"],
        {
            "channel": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_CHANNEL_CHARS,
                "default": DEFAULT_CHANNEL,
                "description": "The conversation: memory is kept per channel.",
            },
            "message": {
                "type": "string",
                "description": "A question, or a command such as `/reset` or `/help`.",
            },
            "user": {
                "type": "string",
                "minLength": 1,
                "maxLength": 200,
                "default": "api",
                "description": "Who asks: the rate limits are per user, and memory keeps it.",
            },
        },
    ),
    "Usage": _obj(
        ["prompt_tokens", "completion_tokens"],
        {
            "prompt_tokens": {"type": "integer", "minimum": 0},
            "completion_tokens": {"type": "integer", "minimum": 0},
        },
    ),
    "ChatReply": _obj(
        ["reply", "usage", "status", "note"],
        {
            "reply": {"type": "string", "description": "What the model (or a command) said."},
            "usage": {"oneOf": [_ref("Usage"), {"type": "null"}]},
            "status": {"enum": ["complete", "partial", "interrupted", "command"]},
            "note": {
                "type": ["string", "null"],
                "description": "Shown after the reply: why it is partial, cut, or not saved.",
            },
        },
    ),
    "ErrorDetail": _obj(
        ["code", "message"],
        {
            "code": {"enum": ERROR_CODES},
            "message": {"type": "string", "description": "A sentence to show a person."},
            "retry_after": {"type": "integer", "minimum": 1},
        },
    ),
    "Error": _obj(["error"], {"error": _ref("ErrorDetail")}),
    "StreamError": _obj(
        ["code", "message", "reply", "status"],
        {
            "code": {"enum": ERROR_CODES},
            "message": {"type": "string", "description": "A sentence to show a person."},
            "retry_after": {"type": "integer", "minimum": 1},
            "reply": {"type": "string", "description": "What had streamed before it failed."},
            "status": {
                "enum": ["failed", "partial", "interrupted", "refused", "rate_limited", "busy"],
                "description": "How the turn ended: never `complete` (that ends in `done`).",
            },
        },
        description="The end of a stream that did not finish: its reply is cut or missing.",
    ),
    "WaitingEvent": _obj(
        ["reason", "message"],
        {
            "reason": {
                "enum": ["line", "model"],
                "description": "`line`: waiting for a free upstream slot; `model`: the model"
                " server asked parley to come back later.",
            },
            "message": {"type": "string", "description": "A sentence to show a person."},
            "ahead": {"type": "integer", "minimum": 0, "description": "Turns ahead in line."},
            "retry_in": {"type": "number", "minimum": 0, "description": "Seconds to the retry."},
        },
    ),
    "StartEvent": _obj(["request_id"], {"request_id": {"type": "string"}}),
    "DeltaEvent": _obj(
        ["text"],
        {
            "text": {"type": "string", "description": "Text new since the last delta."},
            "replace": {"type": "boolean", "description": "`text` replaces all sent so far."},
        },
    ),
    "WsEvent": _obj(
        ["event", "data"],
        {"event": {"enum": list(EVENTS)}, "data": {"type": "object"}},
    ),
    "Health": _obj(["status"], {"status": {"const": "ok"}}),
    "Readiness": _obj(
        ["status", "checks"],
        {
            "status": {"enum": ["ready", "not ready"]},
            "checks": {"type": "object", "additionalProperties": {"type": "boolean"}},
            "failing": {"type": "array", "items": {"type": "string"}},
        },
    ),
}

_SSE = {
    "schema": {"type": "string"},
    "description": (
        "Events `start`, `waiting` while the turn waits (in line, or for the model server), "
        "then `delta`s (join their `text`; `replace` restarts it), then `done` for an answer "
        "that finished (`status` complete: also one cut at the length limit, which its `note`"
        " says) or `error` for one that did not (cut off, failed; `reply` holds what came). "
        "Each is `event: NAME` and one `data:` line of JSON."
    ),
    "x-events": {name: _ref(schema) for name, schema in EVENTS.items()},
}

_CHAT = {
    "post": {
        "operationId": "chat",
        "summary": "Ask in a channel; the answer whole (JSON) or streamed (SSE).",
        "requestBody": {"required": True, "content": _json(_ref("ChatRequest"))},
        "responses": {
            "200": {
                "description": "The reply; send `Accept: text/event-stream` to stream it.",
                "content": {**_json(_ref("ChatReply")), "text/event-stream": _SSE},
            },
            "400": _error("Not JSON, a missing field, or a message parley refuses."),
            "401": _error("No or wrong bearer token."),
            "413": _error("The body is larger than PARLEY_API_MAX_BODY_BYTES."),
            "429": _error("Too many messages: retry after Retry-After seconds.", retry=True),
            "502": _error(
                "The model server (or parley's memory) failed; Retry-After when the model "
                "server asked to slow down.",
                retry=True,
            ),
            "503": _error("Busy, or restarting.", retry=True),
            "504": _error("The model took too long to answer."),
        },
    }
}

_WS = {
    "get": {
        "operationId": "chatWebSocket",
        "summary": "A WebSocket: each text message is a ChatRequest, answered in order.",
        "description": (
            "Each message is answered with WsEvent frames `{event, data}`: `start`, "
            "`waiting`s, `delta`s, then `done` (the answer finished) or `error` (it did not; a "
            "message that is not a valid ChatRequest gets only `error`). `data` follows the "
            "schemas in `x-events`."
        ),
        "x-events": {name: _ref(schema) for name, schema in EVENTS.items()},
        "responses": {
            "101": {"description": "Switching to the WebSocket protocol."},
            "401": _error("No or wrong bearer token."),
        },
    }
}

_OPEN: dict[str, Any] = {"security": []}  # probes answer without a token


def openapi_document() -> dict[str, Any]:
    """The whole document, as a fresh dict (callers may change it)."""
    return copy.deepcopy(_document())


def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "parley",
            "version": "1.0.0",
            "description": "Chat with parley over HTTP: same memory, commands and limits "
            "as on Slack and Discord.",
        },
        "security": [{"bearer": []}],
        "paths": {
            CHAT_PATH: _CHAT,
            WS_PATH: _WS,
            "/healthz": {"get": {**_OPEN, "responses": {"200": _ok("Alive.", "Health")}}},
            "/readyz": {
                "get": {
                    **_OPEN,
                    "responses": {
                        "200": _ok("Ready for traffic.", "Readiness"),
                        "503": _ok("A check fails, or parley is draining.", "Readiness"),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    **_OPEN,
                    "responses": {
                        "200": {
                            "description": "This document.",
                            "content": _json({"type": "object"}),
                        }
                    },
                }
            },
            "/metrics": {
                "get": {
                    **_OPEN,
                    "responses": {
                        "200": {
                            "description": "Prometheus text exposition.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _ok(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": _json(_ref(schema))}
