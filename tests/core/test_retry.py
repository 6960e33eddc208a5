"""The one reader of "wait this long" headers every adapter uses."""

from __future__ import annotations

import email.utils
import time

from core.retry import retry_after


def test_seconds_milliseconds_and_a_date_are_read_and_a_bad_value_is_skipped() -> None:
    assert retry_after({"Retry-After": "2"}) == 2.0
    assert retry_after({"retry-after-ms": "1500", "Retry-After": "9"}) == 1.5
    assert retry_after({"Retry-After-Ms": "soon", "Retry-After": "3"}) == 3.0
    later = email.utils.formatdate(time.time() + 120, usegmt=True)
    assert 100 < (retry_after({"Retry-After": later}) or 0) <= 120
    assert retry_after({"Retry-After": "-4"}) == 0.0  # never a negative wait
    assert retry_after({"Retry-After": "whenever"}) is None
    assert retry_after({}) is None


def test_a_platforms_precise_header_comes_first() -> None:
    headers = {"Retry-After": "2", "X-RateLimit-Reset-After": "1.25"}
    assert retry_after(headers, first=("X-RateLimit-Reset-After",)) == 1.25
    assert retry_after({"Retry-After": "2"}, first=("X-RateLimit-Reset-After",)) == 2.0
