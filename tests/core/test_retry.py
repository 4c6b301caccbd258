from __future__ import annotations

import random

import pytest

from fluxkit._core import RetryPolicy, parse_retry_after


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after({"retry-after": "3"}, now=0) == 3.0
    assert (
        parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:05 GMT"}, now=1445412480.0) == 5.0
    )
    assert parse_retry_after({"retry-after": "garbage"}, now=0) is None
    assert parse_retry_after({}, now=0) is None


def test_retry_after_ms_wins_over_seconds() -> None:
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}, now=0) == 0.25


def test_past_http_date_means_now() -> None:
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=2e9) == 0.0


def test_hint_is_honoured_up_to_the_cap() -> None:
    policy = RetryPolicy(max_delay=10)
    assert policy.delay(0, {"retry-after": "4"}) == 4.0
    assert policy.delay(0, {"retry-after": "60"}) is None  # too long: give up rather than hang


def test_backoff_grows_exponentially_with_jitter_under_the_cap() -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=8)
    rng = random.Random(1)
    delays = [policy.delay(attempt, rng=rng) for attempt in range(6)]
    for attempt, delay in enumerate(delays):
        ceiling = min(8, 0.5 * 2**attempt)
        assert delay is not None and ceiling / 2 <= delay <= ceiling


@pytest.mark.parametrize(
    ("status", "submit", "idempotent"),
    [
        (429, True, True),
        (503, True, True),
        (502, False, True),  # maybe accepted: never resent (JobMayExistError)
        (504, False, True),
        (500, False, True),
        (400, False, False),
        (401, False, False),
        (422, False, False),
        (404, False, False),
    ],
)
def test_which_statuses_retry(status: int, submit: bool, idempotent: bool) -> None:
    policy = RetryPolicy(max_retries=3)
    assert policy.should_retry_status(status, "submit", 0) is submit
    assert policy.should_retry_status(status, "idempotent", 0) is idempotent
    assert policy.should_retry_status(status, "never", 0) is False


def test_retries_stop_at_the_limit() -> None:
    policy = RetryPolicy(max_retries=2)
    assert policy.should_retry_status(429, "submit", 1)
    assert not policy.should_retry_status(429, "submit", 2)


def test_a_submit_that_may_have_been_sent_is_not_retried() -> None:
    policy = RetryPolicy()
    assert policy.should_retry_network("submit", 0, sent=False)
    assert not policy.should_retry_network("submit", 0, sent=True)
    assert policy.should_retry_network("idempotent", 0, sent=True)
