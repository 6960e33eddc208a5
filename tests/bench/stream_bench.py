"""Stream micro-benchmark: `python -m tests.bench.stream_bench` (not collected by pytest).

N concurrent streams from the fake upstream (tests/fakes/upstream.py), each consumed through
OpenAILLM.stream, the way the engine consumes them (the deltas are appended to a buffer and
nothing else). Two phases after a one-request warm-up:

- burst: N requests at once, each answered with one content chunk and no delay: the CPU a
  request costs (SDK request building, connection handling, the response's opening);
- stream: N requests at once, each `--chunks` content chunks `--interval` seconds apart: the CPU
  a chunk costs.

Reported per phase: CPU seconds of this process (time.process_time) per request and per 1,000
content chunks, and the event-loop lag (how late a 10 ms sleep wakes, p50 / p99 / max). The
burst opens the connections the stream phase then reuses; "net of requests" takes the burst's
CPU per request off the stream phase's. `--chunks 1 --interval 0 --repeat 5` measures requests
on open connections instead; `--history 20` sends 20 earlier exchanges (42 messages) in each.

`--fake inproc` (default) runs the fake upstream in this process: its CPU counts too and it
competes for the loop, a pessimistic figure. `--fake subprocess` runs it in a child process
(`--serve-fake` mode of this module), which isolates parley's own cost; the child's CPU is
shown beside it.

`--llm FILE` benchmarks another copy of models/openai/llm.py (e.g. the version before a change);
`--transport httpx2|aiohttp` picks the SDK's HTTP client (parley's OpenAILLM always uses
aiohttp; for another choice, the SDK's client is given that HTTP client instead; a version that
took a `transport` argument is passed it).
`--repeat K` runs the stream phase K times (the figures of a shared machine wander).

Before / after a change: `git show HEAD:models/openai/llm.py > /tmp/old_llm.py`, then
`python -m tests.bench.stream_bench --fake subprocess --repeat 3 --llm /tmp/old_llm.py
--transport httpx2` against the same command without `--llm`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import inspect
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from typing import Any

import openai

from core.llm import Delta, Finish
from core.model import ChatMessage, Role
from tests.fakes.upstream import FakeUpstream, Script

SYSTEM = ChatMessage(Role.SYSTEM, "You are terse.")
TICK = 0.01
MEDIANS = (
    "cpu_s",
    "cpu_per_1000_chunks_s",
    "net_cpu_per_1000_chunks_s",
    "lag_p50_ms",
    "lag_p99_ms",
)

QueueScripts = Callable[[int, Script], Awaitable[None]]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def load_llm_class(path: str | None) -> Any:
    if path is None:
        from models.openai.llm import OpenAILLM

        return OpenAILLM
    spec = importlib.util.spec_from_file_location("openai_llm_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.OpenAILLM


def make_llm(cls: Any, base_url: str, transport: str) -> Any:
    kwargs: dict[str, Any] = {
        "api_key": None,
        "base_url": base_url,
        "connect_timeout": 10.0,
        "first_token_timeout": 60.0,
        "idle_timeout": 60.0,
        "total_timeout": 600.0,
    }
    if "transport" in inspect.signature(cls).parameters:  # a version that had the choice
        return cls(**kwargs, transport=transport)
    llm = cls(**kwargs)
    client = llm._client  # the SDK's client; its `_client` is the HTTP client under it
    if isinstance(client._client, openai.DefaultAioHttpClient) != (transport == "aiohttp"):
        # Another HTTP client under the same SDK client (its retries and headers kept).
        make = (
            openai.DefaultAioHttpClient
            if transport == "aiohttp"
            else openai.DefaultAsyncHttpxClient
        )
        client._client = make(timeout=client.timeout)
    return llm


class LagProbe:
    """A task that sleeps 10 ms over and over and records how late it wakes."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(TICK)
            self.lags.append(loop.time() - start - TICK)

    def start(self) -> None:
        self.lags = []
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> list[float]:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return self.lags


def history(turns: int) -> list[ChatMessage]:
    """A system prompt, `turns` earlier exchanges and the new question."""
    said = [
        ChatMessage(Role.USER if i % 2 == 0 else Role.ASSISTANT, f"Message {i}: " + "words " * 30)
        for i in range(2 * turns)
    ]
    return [SYSTEM, *said, ChatMessage(Role.USER, "Talk to me.")]


async def consume(llm: Any, messages: list[ChatMessage]) -> tuple[int, int]:
    """(content chunks, characters) of one stream, appended to a buffer like the engine does."""
    parts: list[str] = []
    finished = False
    async for event in llm.stream(messages, model="fake-model", max_tokens=4096):
        if isinstance(event, Delta):
            parts.append(event.text)
        elif isinstance(event, Finish):
            finished = True
    assert finished
    return len(parts), sum(map(len, parts))


async def phase(
    name: str,
    llm: Any,
    queue: QueueScripts,
    n: int,
    script: Script,
    child: Child | None,
    messages: list[ChatMessage],
) -> dict[str, Any]:
    await queue(n, script)
    probe = LagProbe()
    probe.start()
    child_cpu0 = child.cpu() if child else 0.0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    results = await asyncio.gather(*(consume(llm, messages) for _ in range(n)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    child_cpu = child.cpu() - child_cpu0 if child else None
    lags = await probe.stop()
    chunks = sum(r[0] for r in results)
    expected = len(script.content_chunks()) * n
    assert chunks == expected, (chunks, expected)  # deltas are never merged by the fake path
    return {
        "phase": name,
        "streams": n,
        "chunks": chunks,
        "cpu_s": cpu,
        "wall_s": wall,
        "cpu_per_request_ms": cpu / n * 1000,
        "cpu_per_1000_chunks_s": cpu / chunks * 1000,
        "lag_p50_ms": pct(lags, 0.5) * 1000,
        "lag_p99_ms": pct(lags, 0.99) * 1000,
        "lag_max_ms": max(lags, default=0.0) * 1000,
        "child_cpu_s": child_cpu,
    }


class Child:
    """The fake upstream in a subprocess, fed scripts over its stdin."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port

    @classmethod
    async def start(cls) -> Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.bench.stream_bench",
            "--serve-fake",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        port = int((await process.stdout.readline()).decode())
        return cls(process, port)

    async def queue(self, n: int, script: Script) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"n": n, "script": asdict(script)}).encode() + b"\n")
        await self.process.stdin.drain()
        assert (await self.process.stdout.readline()).strip() == b"ok"

    def cpu(self) -> float:
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        await self.process.wait()


async def serve_fake() -> None:
    """Child mode: run the fake, print its port, queue the scripts read from stdin."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with FakeUpstream() as fake:
        print(fake.base_url.split(":")[-1].split("/")[0], flush=True)
        while line := await reader.readline():
            order = json.loads(line)
            fake.script(*[Script(**order["script"])] * order["n"])
            print("ok", flush=True)


@contextlib.asynccontextmanager
async def upstream(kind: str) -> AsyncIterator[tuple[str, QueueScripts, Child | None]]:
    if kind == "subprocess":
        child = await Child.start()
        try:
            yield f"http://127.0.0.1:{child.port}/v1", child.queue, child
        finally:
            await child.stop()
    else:
        async with FakeUpstream() as fake:

            async def queue(n: int, script: Script) -> None:
                fake.script(*[script] * n)

            yield fake.base_url, queue, None


async def main(args: argparse.Namespace) -> None:
    cls = load_llm_class(args.llm)
    text = "word " * args.chunks
    stream_script = Script(text=text, chunk_chars=5, interval=args.interval)
    burst_script = Script(text="word ", chunk_chars=5)
    async with upstream(args.fake) as (base_url, queue, child):
        llm = make_llm(cls, base_url, args.transport)
        try:
            messages = history(args.history)
            await phase("warm-up", llm, queue, 1, burst_script, child, messages)
            rows = [await phase("burst", llm, queue, args.streams, burst_script, child, messages)]
            for _ in range(args.repeat):
                rows.append(
                    await phase("stream", llm, queue, args.streams, stream_script, child, messages)
                )
        finally:
            await llm.close()
    label = f"{args.llm or 'models/openai/llm.py'} transport={args.transport} fake={args.fake}"
    print(
        f"# {label}; {args.streams} streams x {args.chunks} chunks @ {args.interval * 1000:g} ms;"
        f" {len(history(args.history))} messages a request"
    )
    print(f"# {os.cpu_count()} cores, Python {platform.python_version()}, load {os.getloadavg()}")
    burst = rows[0]
    for r in rows[1:]:
        # The stream phase opens its requests too: take the burst's cost per request off.
        net = r["cpu_s"] - burst["cpu_per_request_ms"] / 1000 * r["streams"]
        r["net_cpu_per_1000_chunks_s"] = net / r["chunks"] * 1000
    for r in rows:
        child_cpu = (
            "" if r["child_cpu_s"] is None else f"  (fake child CPU {r['child_cpu_s']:.2f} s)"
        )
        print(
            f"{r['phase']:>6}: CPU {r['cpu_s']:6.2f} s over {r['wall_s']:5.2f} s wall; "
            f"{r['cpu_per_request_ms']:6.2f} ms/request; "
            f"{r['cpu_per_1000_chunks_s']:6.3f} s/1000 chunks"
            + (
                f" ({r['net_cpu_per_1000_chunks_s']:5.3f} net of requests); "
                if "net_cpu_per_1000_chunks_s" in r
                else "; "
            )
            + f"loop lag p50 {r['lag_p50_ms']:5.1f} ms, p99 {r['lag_p99_ms']:6.1f} ms, "
            + f"max {r['lag_max_ms']:6.1f} ms{child_cpu}"
        )
    if args.repeat > 1:
        streams = rows[1:]
        med = {k: statistics.median(r[k] for r in streams) for k in MEDIANS}
        print(
            f"median of {len(streams)} stream runs: CPU {med['cpu_s']:.2f} s, "
            f"{med['cpu_per_1000_chunks_s']:.3f} s/1000 chunks "
            f"({med['net_cpu_per_1000_chunks_s']:.3f} net), "
            f"lag p50 {med['lag_p50_ms']:.1f} ms, p99 {med['lag_p99_ms']:.1f} ms"
        )
    if args.json:
        print(json.dumps({"label": label, "rows": rows}))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--chunks", type=int, default=300)
    parser.add_argument("--interval", type=float, default=0.03)
    parser.add_argument("--fake", choices=["inproc", "subprocess"], default="inproc")
    parser.add_argument("--transport", choices=["httpx2", "aiohttp"], default="aiohttp")
    parser.add_argument("--llm", help="path of another openai_llm.py to benchmark")
    parser.add_argument("--history", type=int, default=0, help="earlier turns in each request")
    parser.add_argument("--repeat", type=int, default=1, help="stream phases to run")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.serve_fake:
        asyncio.run(serve_fake())
    else:
        asyncio.run(main(arguments))
