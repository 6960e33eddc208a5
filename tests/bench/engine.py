"""Engine benchmark: `python -m tests.bench.engine` (not collected by pytest).

Prints the engine's added latency to first text, turns per second against a zero-delay
fake upstream, the context load time for a channel with 100,000 stored messages, and peak
RSS. The fake upstream runs in this process, so its CPU is counted too (a pessimistic
figure).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import sqlite3
import tempfile
import time
from pathlib import Path

from core.engine import Engine
from core.logs import configure_logging
from core.model import ConversationKey, Role, StoredMessage, Turn
from core.sink import Sign
from models.openai.llm import OpenAILLM
from storage.sqlite import SqliteStore
from tests.fakes.sink import RecordingSink
from tests.fakes.upstream import FakeUpstream, Script
from tests.support.engine import make_settings

REPLY = " ".join(f"word{n}" for n in range(50))  # about 50 tokens


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(value: float) -> str:
    return f"{value * 1000:7.2f} ms"


async def build(upstream: FakeUpstream, db: Path) -> Engine:
    settings = make_settings(
        upstream,
        db,
        rate_limit_per_minute=1_000_000,
        rate_limit_burst=1_000_000,
        flush_interval=1.0,
        placeholder_after=0.4,
        first_token_timeout=30,
        idle_timeout=30,
        total_timeout=120,
    )
    store = SqliteStore(settings.database)
    await store.open()
    llm = OpenAILLM(
        api_key=None,
        base_url=settings.model.openai_base_url,
        connect_timeout=5,
        first_token_timeout=30,
        idle_timeout=30,
        total_timeout=120,
        max_retries=0,
    )
    return Engine(settings.engine, store, llm)


class TimedSink(RecordingSink):
    """Notes when the first text became visible."""

    first_text_at: float | None = None

    async def post(self, text: str, *, sign: Sign | None = None) -> int:
        if self.first_text_at is None and sign is None:
            self.first_text_at = time.monotonic()
        return await super().post(text, sign=sign)

    async def edit(self, ref: int, text: str, *, sign: Sign | None = None) -> None:
        if self.first_text_at is None and sign is None:
            self.first_text_at = time.monotonic()
        await super().edit(ref, text, sign=sign)


async def one_turn(engine: Engine, upstream: FakeUpstream, channel: str) -> tuple[float, float]:
    """(added latency before upstream, added latency from first chunk to first text)."""
    sink = TimedSink(max_chars=2000)
    start = time.monotonic()
    before = len(upstream.requests)
    await engine.handle(Turn(ConversationKey("bench", "w", channel), "u", "hello"), sink)
    request = upstream.requests[before]
    first_chunk = request["first_content_at"]
    assert sink.first_text_at is not None and first_chunk is not None
    assert sink.shown == REPLY, sink.shown
    return request["received_at"] - start, sink.first_text_at - first_chunk


async def latency(engine: Engine, upstream: FakeUpstream, turns: int) -> None:
    upstream.default = Script(text=REPLY, chunk_chars=8)
    pre: list[float] = []
    first: list[float] = []
    for n in range(turns):
        a, b = await one_turn(engine, upstream, f"seq{n % 20}")
        pre.append(a)
        first.append(b)
    total = [a + b for a, b in zip(pre, first, strict=True)]
    print(f"added latency, {turns} sequential turns (20 channels, memory on):")
    print(f"  event -> upstream request  p50 {ms(pct(pre, 0.5))}  p99 {ms(pct(pre, 0.99))}")
    print(f"  first chunk -> first text  p50 {ms(pct(first, 0.5))}  p99 {ms(pct(first, 0.99))}")
    print(f"  engine total               p50 {ms(pct(total, 0.5))}  p99 {ms(pct(total, 0.99))}")


async def throughput(engine: Engine, upstream: FakeUpstream, turns: int) -> None:
    upstream.default = Script(text=REPLY, chunk_chars=8)
    start = time.monotonic()
    cpu = time.process_time()
    await asyncio.gather(*(one_turn(engine, upstream, f"burst{n}") for n in range(turns)))
    wall = time.monotonic() - start
    used = time.process_time() - cpu
    print(f"burst of {turns} concurrent turns in {turns} channels:")
    per_turn = used / turns * 1000
    print(f"  {turns / wall:7.1f} turns/s   wall {wall:.2f} s   CPU {per_turn:.2f} ms/turn")


async def context_load(db: Path, count: int) -> None:
    store = SqliteStore(db)
    await store.open()
    key = ConversationKey("bench", "w", "history")
    await store.append(key, StoredMessage(Role.USER, "seed", 1))
    with sqlite3.connect(db) as raw:
        (cid,) = raw.execute("SELECT id FROM conversations WHERE channel='history'").fetchone()
        now = time.time()
        raw.executemany(
            "INSERT INTO messages (conversation_id, role, content, status, tokens, author,"
            " request_id, created_at) VALUES (?,?,?,?,?,?,?,?)",
            (
                (
                    cid,
                    "user" if n % 2 else "assistant",
                    f"message {n} " * 8,
                    "complete",
                    20,
                    "u",
                    "",
                    now,
                )
                for n in range(count)
            ),
        )
    for messages, label in ((10, "10 stored"), (count, f"{count:,} stored")):
        small = ConversationKey("bench", "w", f"small{messages}")
        if messages == 10:
            for n in range(10):
                await store.append(small, StoredMessage(Role.USER, f"m{n}", 2))
        target = small if messages == 10 else key
        times = []
        for _ in range(200):
            t = time.perf_counter()
            window = await store.window(target, messages=41, token_budget=8000)
            times.append(time.perf_counter() - t)
        assert window
        print(f"  context load, {label:>17}: p50 {ms(pct(times, 0.5))}  p99 {ms(pct(times, 0.99))}")
    await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--history", type=int, default=100_000)
    args = parser.parse_args()
    configure_logging(level="warning")
    print(f"parley engine benchmark — {os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeUpstream() as upstream:
            engine = await build(upstream, Path(tmp) / "bench.db")
            await latency(engine, upstream, args.turns)
            await throughput(engine, upstream, args.turns)
            await engine.llm.close()
            await engine.store.close()
        print("context window load:")
        await context_load(Path(tmp) / "history.db", args.history)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {rss:.0f} MB")


if __name__ == "__main__":
    asyncio.run(main())
