"""parley's own limits, driven by a fake clock (the `now` argument): no sleeps."""

from __future__ import annotations

import pytest

from core.ratelimit import KeyedBuckets, RateLimiter, TokenBucket


def test_bucket_allows_a_burst_then_says_when_to_retry() -> None:
    bucket = TokenBucket(capacity=3, refill_per_second=0.5)
    assert [bucket.take(10.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(10.0) == pytest.approx(2.0)
    assert bucket.take(11.0) == pytest.approx(1.0)  # a refusal takes nothing


def test_bucket_refills_over_time_up_to_capacity() -> None:
    bucket = TokenBucket(capacity=2, refill_per_second=1.0)
    bucket.take(0.0)
    bucket.take(0.0)
    assert bucket.take(0.5) == pytest.approx(0.5)
    assert bucket.take(1.0) == 0.0
    assert bucket.is_full(100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]


def test_bucket_wait_does_not_take() -> None:
    bucket = TokenBucket(capacity=1, refill_per_second=1.0)
    assert bucket.wait(0.0) == 0.0
    assert bucket.wait(0.0) == 0.0
    assert bucket.take(0.0) == 0.0
    assert bucket.wait(0.25) == pytest.approx(0.75)


def test_bucket_ignores_a_clock_going_backwards() -> None:
    bucket = TokenBucket(capacity=1, refill_per_second=1.0)
    bucket.take(10.0)
    assert bucket.take(5.0) == pytest.approx(1.0)
    assert bucket.take(11.0) == 0.0


@pytest.mark.parametrize(("capacity", "rate"), [(0, 1.0), (1, 0.0), (1, -1.0)])
def test_bucket_rejects_a_limit_that_never_allows(capacity: float, rate: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(capacity, rate)


def test_keyed_buckets_are_independent() -> None:
    buckets = KeyedBuckets(capacity=1, refill_per_second=1.0)
    assert buckets.take("alice", 0.0) == 0.0
    assert buckets.take("alice", 0.0) > 0
    assert buckets.take("bob", 0.0) == 0.0
    assert buckets.wait("carol", 0.0) == 0.0
    assert len(buckets) == 2  # wait() creates nothing


def test_idle_buckets_are_forgotten() -> None:
    buckets = KeyedBuckets(capacity=2, refill_per_second=1.0)
    for user in ("a", "b", "c"):
        buckets.take(user, 0.0)
    assert len(buckets) == 3
    buckets.take("d", 10.0)  # a, b and c are full again by now
    assert len(buckets) == 1


def test_forgetting_a_bucket_changes_no_answer() -> None:
    buckets = KeyedBuckets(capacity=2, refill_per_second=1.0)
    buckets.take("a", 0.0)
    buckets.take("b", 5.0)  # "a" refilled and was dropped
    assert [buckets.take("a", 5.0) for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]


def test_a_hundred_thousand_users_keep_memory_bounded() -> None:
    buckets = KeyedBuckets(capacity=5, refill_per_second=5 / 60)  # full again 12 s after a turn
    now = 0.0
    for user in range(100_000):
        now = user * 0.001  # one new user every millisecond, 100 s in all
        assert buckets.take(f"user-{user}", now) == 0.0
        assert len(buckets) <= 12_001 + 1
    buckets.take("late", now + 3600)
    assert len(buckets) == 1


def test_max_keys_bounds_memory_even_in_one_instant() -> None:
    buckets = KeyedBuckets(capacity=5, refill_per_second=1.0, max_keys=1000)
    for user in range(100_000):
        buckets.take(f"user-{user}", 0.0)
    assert len(buckets) == 1000


def test_recently_used_buckets_survive_the_overflow() -> None:
    buckets = KeyedBuckets(capacity=1, refill_per_second=0.001, max_keys=2)
    buckets.take("busy", 0.0)
    buckets.take("other", 0.0)
    buckets.take("busy", 0.0)  # refused, but now the most recently used
    buckets.take("new", 0.0)
    assert buckets.wait("busy", 0.0) > 0  # still limited: "other" was dropped instead
    assert buckets.wait("other", 0.0) == 0.0


def test_limiter_refuses_after_the_burst_and_says_when() -> None:
    limiter = RateLimiter(per_minute=6, burst=2)
    assert limiter.check("u", "c", 0.0) == 0.0
    assert limiter.check("u", "c", 0.0) == 0.0
    assert limiter.check("u", "c", 0.0) == pytest.approx(10.0)
    assert limiter.check("u", "c", 10.0) == 0.0


def test_limiter_isolates_users() -> None:
    limiter = RateLimiter(per_minute=6, burst=1)
    assert limiter.check("alice", "c1", 0.0) == 0.0
    assert limiter.check("alice", "c2", 0.0) > 0
    assert limiter.check("bob", "c1", 0.0) == 0.0


def test_channel_cap_applies_across_users() -> None:
    limiter = RateLimiter(per_minute=6, burst=1, channel_multiplier=3)
    for user in ("a", "b", "c"):
        assert limiter.check(user, "busy", 0.0) == 0.0
    assert limiter.check("d", "busy", 0.0) == pytest.approx(60 / 18)
    assert limiter.check("d", "quiet", 0.0) == 0.0


def test_refused_turn_takes_nothing_from_either_bucket() -> None:
    limiter = RateLimiter(per_minute=60, burst=1, channel_multiplier=1)
    assert limiter.check("a", "c", 0.0) == 0.0
    assert limiter.check("b", "c", 0.0) > 0  # the channel refuses; b keeps its token
    assert limiter.check("b", "other", 0.0) == 0.0


def test_a_limiter_without_a_rate_is_refused() -> None:
    with pytest.raises(ValueError):
        RateLimiter(per_minute=0, burst=1)
