"""parley's own limits: per-user and per-channel token buckets, and a cap on live streams.

Time is passed in (`now`, monotonic seconds) rather than read here, so the arithmetic is
deterministic and tests need no sleeps.
"""

from __future__ import annotations

from collections import OrderedDict

DEFAULT_MAX_KEYS = 100_000
"""How many buckets a `KeyedBuckets` keeps at most, however many users show up at once."""


class TokenBucket:
    """Allows `capacity` calls at once, then one per 1/`refill_per_second` seconds.

    Starts full. Refilling is computed from `now` on each call, so an idle bucket costs nothing.
    """

    __slots__ = ("_tokens", "_updated", "capacity", "refill_per_second")

    def __init__(self, capacity: float, refill_per_second: float) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        if refill_per_second <= 0:
            raise ValueError(f"refill_per_second must be positive, got {refill_per_second}")
        self.capacity = capacity
        self.refill_per_second = refill_per_second
        self._tokens = float(capacity)
        self._updated: float | None = None

    def take(self, now: float) -> float:
        """Take a token: 0.0 if one was taken, else the seconds until one is (nothing taken)."""
        self._refill(now)
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return self._wait(self._tokens)

    def wait(self, now: float) -> float:
        """Seconds until a token is available (0.0 if one is now), without taking it."""
        level = self._level(now)
        return 0.0 if level >= 1 else self._wait(level)

    def is_full(self, now: float) -> bool:
        """Whether the bucket has refilled completely, i.e. forgetting it would change nothing."""
        return self._level(now) >= self.capacity

    def _level(self, now: float) -> float:
        if self._updated is None:
            return self._tokens
        elapsed = max(0.0, now - self._updated)  # a clock step backwards refills nothing
        return min(self.capacity, self._tokens + elapsed * self.refill_per_second)

    def _refill(self, now: float) -> None:
        self._tokens = self._level(now)
        self._updated = now if self._updated is None else max(self._updated, now)

    def _wait(self, level: float) -> float:
        return (1 - level) / self.refill_per_second


class KeyedBuckets:
    """One `TokenBucket` per key (a user, a channel), all with the same capacity and rate.

    A bucket that has refilled completely is forgotten (a new one would be the same), so
    memory follows the keys active in the last capacity/rate seconds, never all keys ever
    seen. Buckets are kept in least-recently-used order, which makes that sweep O(1)
    amortised; past `max_keys` the least recently used are dropped even if not yet full.
    """

    def __init__(
        self, capacity: float, refill_per_second: float, *, max_keys: int = DEFAULT_MAX_KEYS
    ) -> None:
        TokenBucket(capacity, refill_per_second)  # validate the arguments once, here
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self.capacity = capacity
        self.refill_per_second = refill_per_second
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str, now: float) -> float:
        """Take a token from `key`'s bucket: 0.0 if taken, else seconds until one is."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.capacity, self.refill_per_second)
        else:
            self._buckets.move_to_end(key)
        waited = bucket.take(now)
        self._sweep(now)
        return waited

    def wait(self, key: str, now: float) -> float:
        """Seconds until `key` may take a token (0.0 if now), without taking or creating one."""
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.wait(now)

    def __len__(self) -> int:
        return len(self._buckets)

    def _sweep(self, now: float) -> None:
        """Forget full buckets from the least recently used end, and the overflow."""
        buckets = self._buckets
        while buckets and next(iter(buckets.values())).is_full(now):
            buckets.popitem(last=False)
        while len(buckets) > self.max_keys:
            buckets.popitem(last=False)


class RateLimiter:
    """The limits a turn passes before any upstream call.

    A user may send `burst` turns at once and `per_minute` on average; a channel gets
    `channel_multiplier` times that, shared by everyone in it. (The cap on live upstream
    streams is the line's, core.line.)
    """

    def __init__(
        self,
        *,
        per_minute: float,
        burst: int,
        channel_multiplier: float = 3.0,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        if per_minute <= 0 or channel_multiplier < 1:
            raise ValueError("per_minute must be > 0, channel_multiplier >= 1")
        rate = per_minute / 60
        self._users = KeyedBuckets(burst, rate, max_keys=max_keys)
        self._channels = KeyedBuckets(
            burst * channel_multiplier, rate * channel_multiplier, max_keys=max_keys
        )

    def peek(self, user_key: str, channel_key: str, now: float) -> float:
        """What `check` would answer now, taking nothing."""
        return max(self._users.wait(user_key, now), self._channels.wait(channel_key, now))

    def check(self, user_key: str, channel_key: str, now: float) -> float:
        """0.0 if the turn may go (a token taken from the user and the channel), else the
        seconds until it may, taking nothing: a refused turn does not cost the user more wait.
        """
        waited = max(self._users.wait(user_key, now), self._channels.wait(channel_key, now))
        if waited > 0:
            return waited
        self._users.take(user_key, now)
        self._channels.take(channel_key, now)
        return 0.0
