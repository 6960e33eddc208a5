"""Prometheus metrics: what an operator graphs and alerts on.

Module-level singletons on prometheus_client's default registry, so every front door and
the engine count into the same series and `/metrics` serves them all.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TURNS = Counter(
    "parley_turns_total", "Turns handled, by front door and outcome.", ["platform", "outcome"]
)
RATE_LIMITED = Counter(
    "parley_rate_limited_turns_total", "Turns refused by parley's rate limits.", ["platform"]
)
VALIDATION_REFUSALS = Counter(
    "parley_validation_refusals_total", "Messages refused before the model saw them.", ["platform"]
)
FIRST_TOKEN = Histogram(
    "parley_upstream_first_token_seconds",
    "Time from the upstream request to the first streamed text.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
)
UPSTREAM_DURATION = Histogram(
    "parley_upstream_duration_seconds",
    "Time from the upstream request to the end of its stream.",
    buckets=(0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256),
)
TOKENS = Counter(
    "parley_tokens_total", "Tokens sent to (in) and received from (out) the model.", ["direction"]
)
ACTIVE_STREAMS = Gauge("parley_active_streams", "Replies streaming from the model right now.")
STREAM_LIMIT = Gauge(
    "parley_stream_limit",
    "Upstream streams allowed at once now (adapts to the model server, at most"
    " PARLEY_MAX_CONCURRENT_STREAMS).",
)
QUEUED_TURNS = Gauge("parley_queued_turns", "Turns waiting in line for an upstream stream.")
QUEUE_WAIT = Histogram(
    "parley_queue_wait_seconds",
    "Time a turn waited in line (and for the model server) before its stream started.",
    buckets=(0.01, 0.1, 0.5, 1, 2, 5, 10, 20, 40, 80, 160),
)
UPSTREAM_OVERLOADED = Counter(
    "parley_upstream_overloaded_total",
    "Model server answers that said 'come back later' (429/503); the turn waited and retried.",
)
REPLY_EDITS = Histogram(
    "parley_reply_edits",
    "Platform edits one reply needed (first text to final).",
    buckets=(0, 1, 2, 3, 5, 8, 13, 21, 34, 55),
)
ONE_POST_REPLIES = Counter(
    "parley_one_post_replies_total",
    "Replies posted whole at their end because the platform's edit budget was crowded.",
)
PLATFORM_CALLS = Counter(
    "parley_platform_calls_total",
    "Calls to a chat platform's API, by method and HTTP status.",
    ["platform", "method", "status"],
)
