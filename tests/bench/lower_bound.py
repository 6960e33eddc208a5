"""The earliest final edits a platform's budgets allow: a lower bound for the e2e benchmark.

Given when each reply's mandatory calls become possible — its first message when the first
chunk arrives, the edit that completes a message (and the post that continues it) when the
text passes the platform's per-message limit, its final edit when the stream ends — and the
platform's limits, schedule those calls and nothing else, finals first, each as early as
the limits let it go. No bot can show every final earlier, so `final lag = final time - last
chunk` of this schedule is the bound a real bot's final-edit lag is judged against.

The scheduler is an event-driven greedy: at each moment every released call whose scopes
all have room goes, in priority order (finals and completing edits before first messages,
then by release time); a reply's calls go in their own order (a final never precedes the
message it edits). Limits are modelled exactly as the fakes enforce them: a sliding window
(at most `calls` in any `per` seconds; a call exactly `per` after an old one is allowed) or
a token bucket (`rate` per second, bursts of `burst`).

Pure functions, no I/O; `python -m tests.bench.lower_bound` prints a worked example.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

Scope = tuple[Hashable, ...]
"""A limit's key, e.g. ("slack.update", "T0FAKE") or ("discord.channel", 123)."""


@dataclass(frozen=True)
class Window:
    """At most `calls` calls in any `per` seconds (Slack chat.update, Discord)."""

    calls: int
    per: float


@dataclass(frozen=True)
class Bucket:
    """A token bucket: `rate` calls per second, bursts of `burst` (Slack chat.postMessage)."""

    rate: float
    burst: int


Limit = Window | Bucket


class Kind(enum.IntEnum):
    """Scheduling priority of a mandatory call: lower goes first."""

    FINAL = 0  # the reply's final text
    COMPLETE = 1  # a message completed at the platform's limit
    FIRST = 2  # a reply's first message, or the message continuing it past the limit


@dataclass(frozen=True)
class Call:
    """One mandatory platform call of one reply."""

    reply: Hashable
    kind: Kind
    release: float  # the earliest moment the call can be made (monotonic seconds)
    scopes: Scope  # every limit it counts against: each a key of the `limits` mapping


@dataclass
class _State:
    limit: Limit
    stamps: deque[float] = field(default_factory=deque)  # Window: grant times, oldest first
    tokens: float = -1.0  # Bucket: tokens at `updated`; -1 = untouched (full)
    updated: float = 0.0

    def earliest(self, now: float) -> float:
        """The first moment >= now this scope admits one more call."""
        if isinstance(self.limit, Window):
            if len(self.stamps) < self.limit.calls:
                return now
            return max(now, self.stamps[-self.limit.calls] + self.limit.per)
        tokens = self._tokens(now)
        if tokens >= 1:
            return now
        return now + (1 - tokens) / self.limit.rate

    def take(self, now: float) -> None:
        if isinstance(self.limit, Window):
            self.stamps.append(now)
            while len(self.stamps) > self.limit.calls:
                self.stamps.popleft()  # only the newest `calls` stamps ever matter
            return
        self.tokens = self._tokens(now) - 1
        self.updated = now

    def _tokens(self, now: float) -> float:
        assert isinstance(self.limit, Bucket)
        if self.tokens < 0:
            return float(self.limit.burst)
        return min(self.limit.burst, self.tokens + (now - self.updated) * self.limit.rate)


def _limit_for(limits: Mapping[Hashable, Limit], scope: Hashable) -> Limit:
    """Limits are keyed by a scope's kind (its first element) or by the whole scope."""
    if scope in limits:
        return limits[scope]
    kind = scope[0] if isinstance(scope, tuple) else scope
    return limits[kind]


def schedule(
    calls: Iterable[Call],
    limits: Mapping[Hashable, Limit],
    *,
    prior: Iterable[tuple[Hashable, float]] = (),
) -> dict[Call, float]:
    """When each call goes: finals first, each as early as the limits allow.

    `calls` of one reply go in the order given. `prior` lists calls already made before
    (scope, time), e.g. a warm-up's, which the limits still remember.
    """
    states: dict[Hashable, _State] = {}

    def state(scope: Hashable) -> _State:
        found = states.get(scope)
        if found is None:
            found = states[scope] = _State(_limit_for(limits, scope))
        return found

    for scope, at in sorted(prior, key=lambda item: item[1]):
        state(scope).take(at)

    chains: dict[Hashable, deque[Call]] = {}
    for call in calls:
        chains.setdefault(call.reply, deque()).append(call)
    ready_at: dict[Hashable, float] = {reply: -math.inf for reply in chains}  # previous call
    granted: dict[Call, float] = {}
    now = min((c[0].release for c in chains.values() if c), default=0.0)
    while chains:
        heads = [
            (chain[0], max(chain[0].release, ready_at[reply])) for reply, chain in chains.items()
        ]
        released = sorted(
            (h for h in heads if h[1] <= now), key=lambda h: (h[0].kind, h[1], str(h[0].reply))
        )
        went = False
        for call, _ in released:
            scopes = [state(s) for s in call.scopes]
            if all(s.earliest(now) <= now for s in scopes):
                for s in scopes:
                    s.take(now)
                granted[call] = now
                ready_at[call.reply] = now
                chain = chains[call.reply]
                chain.popleft()
                if not chain:
                    del chains[call.reply]
                went = True
        if went:
            continue  # a grant may release the next call of the same reply at `now`
        # Nothing can go now: jump to the next moment something can.
        upcoming = [
            max(release, *(state(s).earliest(now) for s in call.scopes)) for call, release in heads
        ]
        later = min(upcoming)
        if later <= now:  # rounding: nudge forward rather than spin
            later = math.nextafter(now, math.inf)
        now = later
    return granted


def earliest_finals(
    calls: Iterable[Call],
    limits: Mapping[Hashable, Limit],
    *,
    prior: Iterable[tuple[Hashable, float]] = (),
) -> dict[Hashable, float]:
    """Each reply's earliest final time under `limits` (see `schedule`)."""
    return {
        call.reply: at
        for call, at in schedule(calls, limits, prior=prior).items()
        if call.kind is Kind.FINAL
    }


# -- the two platforms, as the fakes enforce them ---------------------------------------
SLACK_LIMITS: dict[Hashable, Limit] = {
    "slack.update": Window(50, 60.0),  # chat.update, per workspace (FakeSlack.limit_updates)
    "slack.post": Bucket(1.0, 3),  # chat.postMessage, per channel (FakeSlack.limit_posts)
}
DISCORD_LIMITS: dict[Hashable, Limit] = {
    "discord.channel": Window(5, 5.0),  # PATCH of channel messages (FakeDiscord.enforce_limits)
    "discord.bot": Window(50, 1.0),  # every bot request except interactions and webhooks
}


@dataclass(frozen=True)
class Reply:
    """What the bound needs of one reply: when its chunks came, where it streams."""

    key: Hashable
    channel: Hashable
    first_chunk: float
    last_chunk: float
    crossings: Sequence[float] = ()  # when the text passed the per-message limit (each time)


def slack_calls(replies: Iterable[Reply], team: Hashable) -> list[Call]:
    """Slack: posts count per channel, chat.update per workspace."""
    calls: list[Call] = []
    for r in replies:
        post, update = ("slack.post", r.channel), ("slack.update", team)
        calls.append(Call(r.key, Kind.FIRST, r.first_chunk, (post,)))
        for at in r.crossings:
            calls.append(Call(r.key, Kind.COMPLETE, at, (update,)))
            calls.append(Call(r.key, Kind.FIRST, at, (post,)))
        calls.append(Call(r.key, Kind.FINAL, r.last_chunk, (update,)))
    return calls


def slack_one_post_calls(replies: Iterable[Reply]) -> list[Call]:
    """Slack, answering in one post at the end (what parley does on a crowded workspace):
    the reply's only mandatory call is that post, counted per channel."""
    return [Call(r.key, Kind.FINAL, r.last_chunk, (("slack.post", r.channel),)) for r in replies]


def discord_calls(replies: Iterable[Reply]) -> list[Call]:
    """Discord: every call counts against the bot; edits also against their channel."""
    calls: list[Call] = []
    for r in replies:
        bot, channel = ("discord.bot",), ("discord.channel", r.channel)
        calls.append(Call(r.key, Kind.FIRST, r.first_chunk, (bot,)))
        for at in r.crossings:
            calls.append(Call(r.key, Kind.COMPLETE, at, (channel, bot)))
            calls.append(Call(r.key, Kind.FIRST, at, (bot,)))
        calls.append(Call(r.key, Kind.FINAL, r.last_chunk, (channel, bot)))
    return calls


def final_lags(
    replies: Sequence[Reply], calls: Iterable[Call], limits: Mapping[Hashable, Limit], **kw: object
) -> dict[Hashable, float]:
    """Each reply's lower-bound final lag: earliest final time minus its last chunk."""
    finals = earliest_finals(calls, limits, **kw)  # type: ignore[arg-type]
    return {r.key: finals[r.key] - r.last_chunk for r in replies}


def _example() -> None:
    """100 Slack replies and 100 Discord replies, streams of 9 s starting within 50 ms."""
    replies = [Reply(n, f"C{n}", 0.0005 * n, 9.0 + 0.0005 * n) for n in range(100)]
    slack = final_lags(replies, slack_calls(replies, "T"), SLACK_LIMITS)
    discord = final_lags(replies, discord_calls(replies), DISCORD_LIMITS)
    for name, lags in (("slack", slack), ("discord", discord)):
        ordered = sorted(lags.values())
        print(
            f"{name}: final lag p50 {ordered[len(ordered) // 2]:.3f} s,"
            f" p99 {ordered[round(0.99 * (len(ordered) - 1))]:.3f} s, max {ordered[-1]:.3f} s"
        )


if __name__ == "__main__":
    _example()
