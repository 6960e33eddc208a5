"""End-to-end benchmark: `python -m tests.bench.e2e` (not collected by pytest).

`parley run` runs as a subprocess, wired through its settings to the fakes of tests/fakes/
(an OpenAI-compatible upstream, Slack's Web API + Socket Mode, Discord's REST + gateway),
which run in this process's event loop. The upstream streams a 300-token reply, one word
per chunk every 30 ms (about 9 s). Levels of 1, 20, 50 and 200 concurrent conversations,
each in its own channel, half Slack (app_mention over Socket Mode), half Discord
(MESSAGE_CREATE mentioning the bot); level 1 is one Slack conversation, then one Discord one;
levels 100L and 200L have long answers (two words a chunk, ~3,000 characters: Discord splits
each into two messages). parley runs on its defaults but for the per-user rate limit
(raised: the benchmark asks far more often than a person) and, in the open run, the two
platform budgets (0: the fakes enforce nothing).

Every level runs twice, each time in a fresh parley process and fresh fakes:
- open: the fakes enforce no limits and parley is told so (PARLEY_SLACK_UPDATES_PER_MINUTE=0,
  PARLEY_DISCORD_REQUESTS_PER_SECOND=0): this measures parley itself;
- budget: the fakes enforce the real limits and answer 429 past them (Slack chat.update 50 per
  60 s per workspace, chat.postEphemeral 100 per 60 s per workspace, chat.postMessage 1/s per
  channel with bursts of 3; Discord 5 edits per
  5 s per channel, 50 requests/s per bot); parley runs with its defaults (50 and 50). Each
  platform's final-edit lag is compared with the lower bound its limits allow
  (tests/bench/lower_bound.py).

Before a level's burst, one short warm-up conversation per platform (own channels, a one-word
reply) opens parley's connections, so the figures are those of a running bot, not of its
first event. CPU is read from /proc (utime + stime) just before the burst and just after the
last final, so CPU per reply excludes start-up; peak RSS is VmHWM, read before SIGTERM.

What is measured, per conversation, with the fakes' clocks (time.monotonic, this process):
- event -> upstream request: the Socket Mode envelope / gateway dispatch leaving the fake,
  to the upstream receiving the request whose prompt carries that conversation's token;
- event -> first visible sign: to the first message the platform accepts in that channel
  (placeholder or text; a typing call would count too);
- first-text overhead: the upstream's first content chunk -> the first call carrying text;
- final-edit lag: the upstream's last content chunk -> the call after which the platform's
  messages in that channel read exactly the upstream text;
- platform calls per reply (every call into that channel, 429s included), 429s received,
  and whether the final text equals the upstream text.

The fakes share a core with parley on small machines: the table also shows this process's
event-loop lag and CPU, and the load average, to judge how much the figures are distorted.
Options: --levels 1,20 --runs open --no-write (a quick check); --profile DIR records parley
with py-spy (if installed, e.g. `.venv/bin/pip install py-spy`) into DIR as raw collapsed
stacks, from the burst on (--profile-seconds to stop earlier, --profile-idle to sample
waiting threads too, --profile-rate in Hz).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import datetime
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.bench import lower_bound as lb
from tests.fakes import discord_payloads as dp
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_payloads import APP_TOKEN, BOT_TOKEN, BOT_USER_ID
from tests.fakes.upstream import FakeUpstream, RecordedRequest, Script

LEVELS = ("1", "20", "50", "100L", "200", "200L")
"""Conversations at once; "L": long answers (~3,000 characters), which Discord splits in two."""
RUNS = ("open", "budget")
TOKENS = 300  # content chunks of the reply, one word each (two in long answers)
STEP = 0.03  # seconds between chunks
FLUSH_INTERVAL = 1.0  # parley's default (PARLEY_FLUSH_INTERVAL), for the calls-per-reply bound
PLACEHOLDER_AFTER = 0.4  # parley's default (PARLEY_PLACEHOLDER_AFTER), for the report
PLACEHOLDER = "…"  # core.streamer.PLACEHOLDER
SLACK_MAX_CHARS = 11_000 - 4  # bots.slack.render.MAX_CHARS minus core.streamer.FENCE_RESERVE
DISCORD_MAX_CHARS = 2_000 - 4  # bots.discord.sink.MAX_CHARS minus FENCE_RESERVE
SLACK_USER = "U0ALICE"
DISCORD_CHANNEL_BASE = 1_500_000_000_000_000_000
WARM_SLACK_CHANNEL = "CWARMUP"
WARM_DISCORD_CHANNEL = DISCORD_CHANNEL_BASE - 1
RESULTS = Path(__file__).with_name("RESULTS.md")
PARLEY_COMMAND = [sys.executable, "-m", "bots.main", "run"]  # an experiment may wrap it

# Open-run targets, p99 in seconds: event->upstream, event->visible, first-text, final lag.
OPEN_TARGETS = {"20": (0.050, 0.100, 0.050, 0.050), "200": (0.300, 0.450, 0.170, 0.100)}
SLACK_CROWD_TARGET = 2.0  # budget run, 100 Slack answers in one workspace: final lag p99
RSS_TARGET_MB = 200.0
BOUND_FACTOR, BOUND_SLACK = 1.5, 0.100  # budget run: final lag p99 <= 1.5 x bound + 100 ms

VOCABULARY = re.findall(
    r"\S+",
    "the model writes a steady answer about tides and moons while the team reads along and"
    " each word arrives in its own chunk so the bot has plenty to show and edit as it goes",
)
_TOKEN = re.compile(r"\b((?:bench|long|warm)-[sd]-\d+)\b")


def reply_chunks(token: str) -> list[str]:
    """The upstream's reply for one conversation: its token, then 299 chunks of a word each
    (~1,500 characters) or, for a long answer, of two words each (~3,000 characters)."""
    if token.startswith("warm"):
        return [f"{token} ready."]
    per = 2 if token.startswith("long") else 1

    def word(n: int) -> str:
        return " " + str(VOCABULARY[n % len(VOCABULARY)]) + ("." if n % 12 == 11 else "")

    chunks = ["".join(word(per * n + k) for k in range(per)) for n in range(TOKENS - 1)]
    return [token, *chunks]


class BenchUpstream(FakeUpstream):
    """The fake upstream, answering each conversation with its own reply (found by the
    token in the prompt), so a reply shown in the wrong channel would not pass."""

    async def _stream(
        self, request: web.Request, record: RecordedRequest, body: dict[str, Any], script: Script
    ) -> web.StreamResponse:
        token = request_token(record)
        if token is not None:
            script = Script(chunks=reply_chunks(token), interval=STEP)
        return await super()._stream(request, record, body, script)


def request_token(record: RecordedRequest) -> str | None:
    body = record["body"] if isinstance(record["body"], dict) else {}
    messages = body.get("messages") or [{}]
    found = _TOKEN.search(str(messages[-1].get("content", "")))
    return found[1] if found else None


# -- statistics ---------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (as tests/bench/engine.py); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fmt(seconds: float) -> str:
    if math.isnan(seconds):
        return "—"
    if abs(seconds) >= 1.0:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.1f} ms"


def pair(values: list[float]) -> str:
    return f"{fmt(pct(values, 0.5))} / {fmt(pct(values, 0.99))}"


# -- the parley process ---------------------------------------------------------------------
def _die_with_parent() -> None:
    """In the child: SIGKILL when the benchmark dies, so no parley outlives it (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (/proc/<pid>/stat fields 14 and 15)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


@dataclass
class Parley:
    process: asyncio.subprocess.Process
    port: int
    log: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None
    profiler: subprocess.Popen[bytes] | None = None


async def start_parley(env: dict[str, str], cwd: Path) -> Parley:
    port = free_port()
    full = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PARLEY_HTTP_HOST": "127.0.0.1",
        "PARLEY_HTTP_PORT": str(port),
        **env,
    }
    process = await asyncio.create_subprocess_exec(
        *PARLEY_COMMAND,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=full,
        cwd=str(cwd),
        preexec_fn=_die_with_parent,
    )  # fmt: skip
    parley = Parley(process, port)
    parley.reader = asyncio.create_task(_collect(parley))
    try:
        await _until_ready(parley)
    except BaseException:
        await stop_parley(parley)
        raise
    return parley


async def _collect(parley: Parley) -> None:
    assert parley.process.stderr is not None
    async for line in parley.process.stderr:
        parley.log.append(line.decode(errors="replace").rstrip())


async def _until_ready(parley: Parley, timeout: float = 60.0) -> None:
    """Poll /readyz: the database and both platforms connected."""
    url = f"http://127.0.0.1:{parley.port}/readyz"
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if parley.process.returncode is not None:
                tail = "\n".join(parley.log[-20:])
                raise RuntimeError(f"parley exited ({parley.process.returncode}):\n{tail}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError("parley was not ready within a minute:\n" + "\n".join(parley.log[-20:]))


async def stop_parley(parley: Parley) -> int | None:
    """SIGTERM (parley drains), then SIGKILL if it has not exited within 30 s."""
    stop_profiler(parley)
    process = parley.process
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    if parley.reader is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(parley.reader, 5)
    return process.returncode


@dataclass(frozen=True)
class Profile:
    """Where and how to record parley with py-spy (--profile*)."""

    into: Path
    rate: int = 200
    seconds: float | None = None  # from just before the burst; None: until the last final
    idle: bool = False  # sample waiting threads too (where a turn waits, not only CPU)


async def start_profiler(parley: Parley, profile: Profile, name: str) -> None:
    parley.profiler = _spawn_profiler(parley.process.pid, profile, name)
    if parley.profiler is not None:
        await asyncio.sleep(0.5)  # py-spy attaches before the burst starts


def _spawn_profiler(pid: int, profile: Profile, name: str) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("  (py-spy not found: no profile)")
        return None
    command = [spy, "record", "--pid", str(pid), "--rate", str(profile.rate)]
    command += ["--format", "raw", "--nonblocking", "--output", str(profile.into / name)]
    if profile.seconds is not None:
        command += ["--duration", str(max(1, math.ceil(profile.seconds)))]
    if profile.idle:
        command += ["--idle"]
    return subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )


def stop_profiler(parley: Parley) -> None:
    spy, parley.profiler = parley.profiler, None
    if spy is not None and spy.poll() is None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            spy.wait(15)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


# -- conversations ----------------------------------------------------------------------------
@dataclass
class Conversation:
    platform: str  # "slack" | "discord"
    channel: str  # Slack channel id, or Discord channel id as a string
    token: str
    expected: str
    sent_at: float = math.nan
    request: RecordedRequest | None = None


@dataclass
class Measured:
    """One conversation's figures (None: did not happen)."""

    platform: str
    to_request: float | None
    to_visible: float | None
    first_text: float | None
    final_lag: float | None
    calls: int
    calls_bound: float | None
    complete: bool
    first_chunk: float | None
    last_chunk: float | None


def parse_level(label: str) -> tuple[int, bool]:
    """ "200L" -> (200, True): conversations at once, and whether the answers are long."""
    return int(label.rstrip("L")), label.endswith("L")


def conversations(label: str) -> list[list[Conversation]]:
    """The phases of a level: level 1 is Slack alone, then Discord alone; else one burst."""
    level, long = parse_level(label)
    per = max(1, level // 2)
    kind = "long" if long else "bench"

    def slack(n: int) -> Conversation:
        token = f"{kind}-s-{n:04d}"
        return Conversation("slack", f"CB{level:03d}{n:05d}", token, "".join(reply_chunks(token)))

    def discord(n: int) -> Conversation:
        token = f"{kind}-d-{n:04d}"
        channel = str(DISCORD_CHANNEL_BASE + level * 10_000 + n)
        return Conversation("discord", channel, token, "".join(reply_chunks(token)))

    if level == 1:
        return [[slack(0)], [discord(0)]]
    burst: list[Conversation] = []
    for n in range(per):
        burst += [slack(n), discord(n)]
    return [burst]


class Platforms:
    """The two fakes, and what a person sees in each channel."""

    def __init__(self, slack: FakeSlack, discord: FakeDiscord) -> None:
        self.slack = slack
        self.discord = discord

    async def send(self, conv: Conversation) -> None:
        if conv.platform == "slack":
            text = f"<@{BOT_USER_ID}> {conv.token} tell me about the tides, please"
            envelope = await self.slack.mention(conv.channel, SLACK_USER, text)
            conv.sent_at = envelope.sent_at
        else:
            text = f"<@{dp.BOT_ID}> {conv.token} tell me about the tides, please"
            message_id = await self.discord.say(text, channel_id=int(conv.channel))
            conv.sent_at = self.discord.dispatched_at[str(message_id)]

    def shown(self) -> dict[tuple[str, str], str]:
        """(platform, channel) -> the bot's messages there, joined."""
        texts: dict[tuple[str, str], list[str]] = {}
        for m in self.slack.messages:
            texts.setdefault(("slack", m.channel), []).append(m.text)
        for d in self.discord.messages.values():
            if d.author_id == dp.BOT_ID and d.kind != "user":
                texts.setdefault(("discord", str(d.channel_id)), []).append(d.content)
        return {key: "".join(parts) for key, parts in texts.items()}

    async def until_shown(self, convs: list[Conversation], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.shown()
            if all(shown.get((c.platform, c.channel)) == c.expected for c in convs):
                return
            await asyncio.sleep(0.1)

    # -- replaying each channel's calls -------------------------------------------------
    def timeline(self, conv: Conversation) -> tuple[list[tuple[float, bool, str]], int]:
        """The accepted calls into a channel as (time, is_post, text the channel reads after
        the call), and how many calls went there in all (rejected ones included)."""
        steps: list[tuple[float, bool, str]] = []
        shown: dict[Hashable, str] = {}  # message -> text, in posting order
        if conv.platform == "slack":
            calls = [
                c
                for c in self.slack.calls
                if c.method in ("chat.postMessage", "chat.update", "chat.postEphemeral")
                and str(c.params.get("channel")) == conv.channel
            ]
            posted = iter(m.ts for m in self.slack.messages if m.channel == conv.channel)
            for c in calls:
                if c.status != 200 or c.error is not None:
                    continue
                if c.method == "chat.postEphemeral":  # a sign the asker sees, in the thread
                    steps.append((c.at, True, "".join(shown.values())))
                    continue
                text = str(c.params.get("markdown_text") or c.params.get("text") or "")
                post = c.method == "chat.postMessage"
                shown[next(posted) if post else str(c.params.get("ts"))] = text
                steps.append((c.at, post, "".join(shown.values())))
            return steps, len(calls)
        prefix = f"/channels/{conv.channel}/"
        dcalls = [c for c in self.discord.calls if c.path.startswith(prefix)]
        bot_messages = iter(
            m.id
            for m in self.discord.messages.values()
            if str(m.channel_id) == conv.channel and m.author_id == dp.BOT_ID and m.kind != "user"
        )
        for d in dcalls:
            if d.status != 200:
                continue
            if d.path.endswith("/typing"):
                steps.append((d.at, True, "".join(shown.values())))
                continue
            content = str((d.body or {}).get("content") or "")
            if d.method == "POST":
                shown[next(bot_messages)] = content
                steps.append((d.at, True, "".join(shown.values())))
            elif d.method == "PATCH":
                shown[int(d.path.rsplit("/", 1)[1])] = content
                steps.append((d.at, False, "".join(shown.values())))
        return steps, len(dcalls)

    def measure(self, conv: Conversation) -> Measured:
        steps, calls = self.timeline(conv)
        req = conv.request
        first_chunk = req["first_content_at"] if req else None
        last_chunk = req["last_content_at"] if req else None
        visible = next((at for at, post, _ in steps if post), None)
        first_text = next((at for at, _, text in steps if text.strip(PLACEHOLDER + " ")), None)
        final = next((at for at, _, text in steps if text == conv.expected), None)
        shown_last = steps[-1][2] if steps else ""
        bound = None
        if first_chunk is not None and last_chunk is not None:
            bound = (last_chunk - first_chunk) / FLUSH_INTERVAL + 2
        return Measured(
            conv.platform,
            req["received_at"] - conv.sent_at if req else None,
            visible - conv.sent_at if visible is not None else None,
            first_text - first_chunk if first_text is not None and first_chunk else None,
            final - last_chunk if final is not None and last_chunk else None,
            calls,
            bound,
            shown_last == conv.expected,
            first_chunk,
            last_chunk,
        )

    def prior_calls(self, platform: str, before: float) -> list[tuple[Hashable, float]]:
        """Calls made before `before` that the platform's limits still count."""
        prior: list[tuple[Hashable, float]] = []
        if platform == "slack":
            for c in self.slack.calls:
                if c.at >= before or c.status != 200:
                    continue
                if c.method == "chat.update":
                    prior.append((("slack.update", self.slack.team_id), c.at))
                elif c.method == "chat.postMessage":
                    prior.append((("slack.post", str(c.params.get("channel"))), c.at))
            return prior
        for d in self.discord.calls:
            if d.at >= before or d.status == 429:
                continue
            if not d.path.startswith(("/interactions/", "/webhooks/")):
                prior.append((("discord.bot",), d.at))
            match = re.fullmatch(r"/channels/(\d+)/messages/\d+", d.path)
            if match and d.method == "PATCH":
                prior.append((("discord.channel", match[1]), d.at))
        return prior


# -- one level of one run -------------------------------------------------------------------
@dataclass
class LevelResult:
    run: str
    level: str  # "200", or "200L" for long answers
    measured: list[Measured]
    rate_limited: dict[str, int]
    cpu_per_reply: float
    peak_rss_mb: float
    bench_lag_p99: float
    bench_lag_max: float
    bench_cpu: float
    wall: float
    load: float
    exit_code: int | None
    warnings: list[str]
    bound_lags: dict[str, list[float]] = field(default_factory=dict)
    limited_calls: dict[str, int] = field(default_factory=dict)  # "platform call" -> 429s

    def of(self, platform: str | None) -> list[Measured]:
        return [m for m in self.measured if platform is None or m.platform == platform]


def crossings(chunks: list[str], first: float, last: float, limit: int) -> list[float]:
    """When the text passed the per-message limit (chunks assumed evenly spaced)."""
    found, size, mark = [], 0, limit
    step = (last - first) / max(1, len(chunks) - 1)
    for n, chunk in enumerate(chunks):
        size += len(chunk)
        if size > mark:
            found.append(first + n * step)
            mark += limit
    return found


def lower_bound_lags(
    result_convs: list[Conversation], platforms: Platforms
) -> dict[str, list[float]]:
    lags: dict[str, list[float]] = {}
    for name in ("slack", "discord"):
        convs = [c for c in result_convs if c.platform == name and c.request is not None]
        replies = []
        for c in convs:
            assert c.request is not None
            first, last = c.request["first_content_at"], c.request["last_content_at"]
            if first is None or last is None:
                continue
            limit = SLACK_MAX_CHARS if name == "slack" else DISCORD_MAX_CHARS
            cross = crossings(reply_chunks(c.token), first, last, limit)
            replies.append(lb.Reply(c.token, c.channel, first, last, cross))
        if not replies:
            continue
        start = min(c.sent_at for c in convs)
        prior = platforms.prior_calls(name, start)
        if name == "slack":
            # The better of the two ways a Slack reply can end: chat.update (per workspace)
            # after a post, or one post at the end (per channel).
            streamed = lb.earliest_finals(
                lb.slack_calls(replies, platforms.slack.team_id), lb.SLACK_LIMITS, prior=prior
            )
            posted = lb.earliest_finals(
                lb.slack_one_post_calls(replies), lb.SLACK_LIMITS, prior=prior
            )
            finals = {r.key: min(streamed[r.key], posted[r.key]) for r in replies}
        else:
            finals = lb.earliest_finals(lb.discord_calls(replies), lb.DISCORD_LIMITS, prior=prior)
        lags[name] = [finals[r.key] - r.last_chunk for r in replies]
    return lags


async def run_level(level: str, run: str, work: Path, profile: Profile | None) -> LevelResult:
    budget = run == "budget"
    phases = conversations(level)
    everyone = [c for phase in phases for c in phase]
    lags: list[float] = []
    monitor_stop = asyncio.Event()
    async with BenchUpstream() as upstream, FakeSlack() as slack, FakeDiscord() as discord:
        if budget:
            slack.limit_updates(50, 60.0)
            slack.limit_ephemerals(100, 60.0)
            slack.limit_posts(1.0, 3)
            discord.enforce_limits(channel_edits=5, per=5.0, bot=50)
        env = {
            "OPENAI_BASE_URL": upstream.base_url,
            "PARLEY_MODEL": "fake-model",
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_APP_TOKEN": APP_TOKEN,
            "SLACK_API_URL": slack.api_url,
            "DISCORD_BOT_TOKEN": discord.token,
            "DISCORD_API_URL": discord.api_url,
            "PARLEY_DATABASE": str(work / "parley.db"),
            # parley's defaults, but for these: one person per conversation asks often
            # here, and the open run's fakes enforce no limits, so parley is told so.
            "PARLEY_RATE_LIMIT_PER_MINUTE": "1000000",
            "PARLEY_RATE_LIMIT_BURST": "1000000",
        }
        if not budget:
            env["PARLEY_SLACK_UPDATES_PER_MINUTE"] = "0"
            env["PARLEY_DISCORD_REQUESTS_PER_SECOND"] = "0"
        platforms = Platforms(slack, discord)
        parley = await start_parley(env, work)
        try:
            await discord.wait_connected(timeout=10)
            warm = [
                Conversation("slack", WARM_SLACK_CHANNEL, "warm-s-0", "warm-s-0 ready."),
                Conversation("discord", str(WARM_DISCORD_CHANNEL), "warm-d-0", "warm-d-0 ready."),
            ]
            await asyncio.gather(*(platforms.send(c) for c in warm))
            await platforms.until_shown(warm, 30)
            await asyncio.sleep(1.2)  # the warm-up leaves Discord's one-second window
            if profile is not None:
                await start_profiler(parley, profile, f"{run}-{level}.txt")
            monitor = asyncio.create_task(_loop_lag(lags, monitor_stop))
            load = os.getloadavg()[0]
            cpu_before, bench_before = cpu_seconds(parley.process.pid), time.process_time()
            started = time.monotonic()
            for phase in phases:
                await asyncio.gather(*(platforms.send(c) for c in phase))
                slack_n = sum(c.platform == "slack" for c in phase)
                timeout = 60.0 + (70.0 * math.ceil(slack_n / 50) if budget else 0.0)
                await platforms.until_shown(phase, timeout)
            wall = time.monotonic() - started
            cpu_after, bench_after = cpu_seconds(parley.process.pid), time.process_time()
            rss = peak_rss_mb(parley.process.pid)
            monitor_stop.set()
            await monitor
        finally:
            exit_code = await stop_parley(parley)
        by_token = {request_token(r): r for r in upstream.requests}
        for c in everyone:
            c.request = by_token.get(c.token)
        measured = [platforms.measure(c) for c in everyone]
        result = LevelResult(
            run,
            level,
            measured,
            {"slack": sum(slack.rate_limited.values()), "discord": discord.rate_limited},
            (cpu_after - cpu_before) / len(everyone),
            rss,
            pct(lags, 0.99),
            max(lags, default=math.nan),
            bench_after - bench_before,
            wall,
            load,
            exit_code,
            [line for line in parley.log if _worth_reporting(line)],
        )
        if budget:
            result.bound_lags = lower_bound_lags(everyone, platforms)
        result.limited_calls = limited_calls(slack, discord)
        return result


def limited_calls(slack: FakeSlack, discord: FakeDiscord) -> dict[str, int]:
    """The 429s each fake sent, by call (ids folded)."""
    counts: dict[str, int] = {f"slack {m}": n for m, n in slack.rate_limited.items() if n}
    for c in discord.calls:
        if c.status == 429:
            route = "discord " + c.method + " " + re.sub(r"\d{6,}", "{id}", c.path)
            counts[route] = counts.get(route, 0) + 1
    return counts


def _worth_reporting(line: str) -> bool:
    """A warning or error parley logged, other than discord.py's note about voice."""
    return ("warning" in line or "error" in line) and "voice will NOT be supported" not in line


async def _loop_lag(lags: list[float], stop: asyncio.Event) -> None:
    """How late this process's event loop wakes a 10 ms sleep: the fakes' own delay."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(0.01)
        lags.append(loop.time() - before - 0.01)


# -- reporting ---------------------------------------------------------------------------------
def values(ms: Iterable[Measured], name: str) -> list[float]:
    return [v for m in ms if (v := getattr(m, name)) is not None]


def row(r: LevelResult, platform: str | None = None) -> str:
    ms = r.of(platform)
    calls = [m.calls for m in ms]
    bounds = [m.calls_bound for m in ms if m.calls_bound is not None]
    over = sum(1 for m in ms if m.calls_bound is not None and m.calls > m.calls_bound)
    complete = sum(m.complete for m in ms) / len(ms) if ms else math.nan
    mean_calls = sum(calls) / len(calls) if calls else math.nan
    calls_cell = f"{mean_calls:.1f} (max {max(calls, default=0)}, bound {min(bounds or [0]):.1f})"
    if over:
        calls_cell += f" **{over} over**"
    cells = [
        f"{r.level}" + (f" {platform}" if platform else ""),
        pair(values(ms, "to_request")),
        pair(values(ms, "to_visible")),
        pair(values(ms, "first_text")),
        pair(values(ms, "final_lag")),
        calls_cell,
    ]
    if platform is None:
        cells += [
            f"{sum(r.rate_limited.values())}",
            f"{r.cpu_per_reply * 1000:.1f} ms",
            f"{r.peak_rss_mb:.0f} MB",
            f"{complete:.3f}",
            f"{fmt(r.bench_lag_p99)} / {fmt(r.bench_lag_max)}",
            f"{r.bench_cpu:.1f} s / {r.wall:.1f} s",
            f"{r.load:.2f}",
        ]
    else:
        cells += [f"{r.rate_limited[platform]}", "", "", f"{complete:.3f}", "", "", ""]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| level | event→upstream p50 / p99 | event→visible p50 / p99 | first chunk→first text"
    " p50 / p99 | last chunk→final p50 / p99 | calls/reply mean (max, bound) | 429s"
    " | CPU/reply | peak RSS | final = upstream | bench loop lag p99 / max"
    " | bench CPU / wall | load |\n" + "|---" * 13 + "|"
)


def verdicts(results: list[LevelResult]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for every target the issue sets."""
    out: list[tuple[str, str, bool]] = []
    names = ("event→upstream", "event→visible", "first-text overhead", "final-edit lag")
    fields = ("to_request", "to_visible", "first_text", "final_lag")
    for r in results:
        ms = r.of(None)
        if r.run == "open":
            for n, (name, attr) in enumerate(zip(names, fields, strict=True)):
                if r.level in OPEN_TARGETS:
                    target = OPEN_TARGETS[r.level][n]
                    got = pct(values(ms, attr), 0.99)
                    out.append(
                        (f"open {r.level}: {name} p99 < {fmt(target)}", fmt(got), got < target)
                    )
            over = [m for m in ms if m.calls_bound is not None and m.calls > m.calls_bound]
            worst = max((m.calls - (m.calls_bound or 0) for m in ms), default=0)
            out.append(
                (
                    f"open {r.level}: calls/reply ≤ stream s / flush + 2",
                    f"max {max(m.calls for m in ms)}, {len(over)} over (worst {worst:+.1f})",
                    not over,
                )
            )
            out.append(
                (
                    f"open {r.level}: peak RSS < {RSS_TARGET_MB:.0f} MB",
                    f"{r.peak_rss_mb:.0f} MB",
                    r.peak_rss_mb < RSS_TARGET_MB,
                )
            )
        else:
            limited = sum(r.rate_limited.values())
            out.append((f"budget {r.level}: zero 429s", str(limited), limited == 0))
            complete = sum(m.complete for m in ms) / len(ms)
            out.append(
                (f"budget {r.level}: every final text complete", f"{complete:.3f}", complete == 1)
            )
            for name in ("slack", "discord"):
                bound = pct(r.bound_lags.get(name, []), 0.99)
                got = pct(values(r.of(name), "final_lag"), 0.99)
                allowed = BOUND_FACTOR * bound + BOUND_SLACK
                out.append(
                    (
                        f"budget {r.level}: {name} final lag p99 ≤ 1.5 × bound + 100 ms"
                        f" ({fmt(bound)}; allowed {fmt(allowed)})",
                        fmt(got),
                        got <= allowed,
                    )
                )
            slack = r.of("slack")
            if len(slack) >= 100:  # every Slack conversation is in the fake's one workspace
                got = pct(values(slack, "final_lag"), 0.99)
                out.append(
                    (
                        f"budget {r.level}: {len(slack)} Slack answers in one workspace,"
                        f" final lag p99 < {fmt(SLACK_CROWD_TARGET)}",
                        fmt(got),
                        got < SLACK_CROWD_TARGET,
                    )
                )
    return out


def report(results: list[LevelResult], started: datetime.datetime) -> str:
    lines = [
        "# parley end-to-end benchmark",
        "",
        f"`python -m tests.bench.e2e` — {started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores"
        f" ({platform.processor() or platform.machine()}), Python {platform.python_version()},"
        f" parley at {_git_state()}.",
        "",
        f"Reply: {TOKENS} chunks of one word (~{len(''.join(reply_chunks('bench-s-0000')))}"
        f" characters), one every {STEP * 1000:.0f} ms (~{(TOKENS - 1) * STEP:.1f} s); level"
        " NL: two words a chunk (~"
        f"{len(''.join(reply_chunks('long-s-0000')))} characters, which Discord splits in two"
        " messages). parley runs on its defaults (flush interval"
        f" {FLUSH_INTERVAL:g} s, placeholder after {PLACEHOLDER_AFTER:g} s, stream cap 256),"
        " except the per-user rate limit, raised, and in the open run the two platform"
        " budgets, turned off. Level N = N conversations in N channels, half Slack (Socket"
        " Mode mentions), half Discord (gateway mentions), all sent at once; level 1 = one"
        " Slack conversation, then one Discord one. A fresh parley process per level and run,"
        " after a one-word warm-up conversation per platform. p50 / p99 are nearest-rank.",
        "",
        "The fakes run in the benchmark's process, on the same cores as parley: the last"
        " columns show that process's event-loop lag and CPU during the level, and the load"
        f" average when it started ({_loads(results)} here). On a shared virtual machine the"
        " figures of one run wander: p99s at 200 moved by up to half between runs of the same"
        " code.",
        "",
    ]
    for run in RUNS:
        chosen = [r for r in results if r.run == run]
        if not chosen:
            continue
        title = {
            "open": "Open run (no limits enforced; parley told 0 = no budget)",
            "budget": "Budget run (the fakes enforce the real limits; parley's defaults)",
        }[run]
        lines += [f"## {title}", "", HEADER]
        for r in chosen:
            lines.append(row(r))
            lines += [row(r, p) for p in ("slack", "discord")]
        lines.append("")
        if run == "budget":
            lines += [
                "Final-edit lag against the lower bound each platform's limits allow"
                " (tests/bench/lower_bound.py: the mandatory calls only, finals first, each as"
                " early as the fake's windows let it go, from the measured chunk times; for Slack"
                " the better of streaming by chat.update and posting the answer whole at its"
                " end); the target is p99 ≤ 1.5 × the bound + 100 ms.",
                "",
                "| level | platform | bound p50 / p99 | measured p50 / p99 | ratio p99 |",
                "|---|---|---|---|---|",
            ]
            for r in chosen:
                for name in ("slack", "discord"):
                    lags = r.bound_lags.get(name, [])
                    got = values(r.of(name), "final_lag")
                    bound = pct(lags, 0.99)
                    ratio = f"{pct(got, 0.99) / bound:.2f}" if bound > 0.001 else "—"
                    lines.append(f"| {r.level} | {name} | {pair(lags)} | {pair(got)} | {ratio} |")
            lines.append("")
    lines += [
        "## Targets",
        "",
        "What changed for these figures, and what profiling showed: [PROFILE.md](PROFILE.md).",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for target, measured, met in verdicts(results):
        lines.append(f"| {target} | {measured} | {'yes' if met else '**no**'} |")
    lines.append("")
    for r in results:
        if r.limited_calls:
            detail = ", ".join(f"{name} × {n}" for name, n in sorted(r.limited_calls.items()))
            lines.append(f"- {r.run} {r.level}: 429s received: {detail}")
    odd = [r for r in results if r.exit_code not in (0, None) or r.warnings]
    for r in odd:
        lines.append(
            f"- {r.run} {r.level}: parley exit code {r.exit_code}, {len(r.warnings)} warning or"
            " error lines" + "".join(f"\n  - `{w[:300]}`" for w in r.warnings[:3])
        )
    return "\n".join(lines) + "\n"


def _loads(results: list[LevelResult]) -> str:
    loads = [r.load for r in results]
    return f"{min(loads):.2f}–{max(loads):.2f}" if loads else "unknown"


def _git_state() -> str:
    try:
        root = Path(__file__).resolve().parents[2]
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "an unknown commit"
    return f"{commit}" + (" with uncommitted changes" if dirty else "")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    parser.add_argument("--runs", default=",".join(RUNS))
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the table goes")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--profile", type=Path, help="record parley with py-spy into this dir")
    parser.add_argument("--profile-rate", type=int, default=200, help="py-spy samples per s")
    parser.add_argument(
        "--profile-seconds", type=float, help="record only this long from the burst"
    )
    parser.add_argument("--profile-idle", action="store_true", help="sample waiting threads")
    args = parser.parse_args()
    levels = [x for x in args.levels.split(",") if x]
    runs = [x for x in args.runs.split(",") if x]
    profile = None
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        profile = Profile(args.profile, args.profile_rate, args.profile_seconds, args.profile_idle)
    started = datetime.datetime.now(datetime.UTC)
    print(f"parley e2e benchmark — {os.cpu_count()} cores, Python {platform.python_version()}")
    results: list[LevelResult] = []
    for run in runs:
        for level in levels:
            with tempfile.TemporaryDirectory(prefix="parley-e2e-") as tmp:
                t0 = time.monotonic()
                result = await run_level(level, run, Path(tmp), profile)
                results.append(result)
                print(f"{run} {level}: {time.monotonic() - t0:.1f} s")
                print("  " + row(result))
                for name in ("slack", "discord"):
                    print("  " + row(result, name))
                if result.bound_lags:
                    for name, lag in result.bound_lags.items():
                        print(f"  lower bound {name}: {pair(lag)}")
    text = report(results, started)
    print()
    print(text)
    if not args.no_write:
        args.out.write_text(text)
        print(f"written to {args.out}")


if __name__ == "__main__":
    asyncio.run(main())
