"""The one retry policy, as pure functions: which answers retry, and how long to wait.

Order of precedence for the delay (as the anthropic and openai SDKs do):
``retry-after-ms`` header, then ``Retry-After`` (seconds or an HTTP date), then exponential
backoff with full jitter. Provider hints are honoured up to ``max_delay``; a longer hint ends the
retries instead of hanging the caller.
"""

from __future__ import annotations

import email.utils
import random
from collections.abc import Mapping
from dataclasses import dataclass

from fluxkit._core._wire import RetryMode

__all__ = ["MAYBE_ACCEPTED", "RetryPolicy", "parse_retry_after"]

_NOT_ACCEPTED = frozenset({429, 503})
"""Answers that prove a submission was refused, so resending it cannot pay twice. 502 and 504
come from a gateway that may have forwarded the request before giving up: "maybe accepted"."""
_TRANSIENT = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAYBE_ACCEPTED = frozenset({502, 504})
"""Answers to a submission that may hide an accepted job: a gateway's, after forwarding it. (A
500 is the provider's own server answering that the request failed.)"""


def parse_retry_after(headers: Mapping[str, str], *, now: float) -> float | None:
    """Seconds the server asked us to wait, or None.

    ``now`` is the current Unix time, passed in so this stays pure.
    """
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry.

    Attributes:
        max_retries: retries after the first attempt (0 disables retrying).
        initial_delay: backoff base in seconds.
        max_delay: cap for backoff and for honoured ``Retry-After`` hints.
    """

    max_retries: int = 4
    initial_delay: float = 0.5
    max_delay: float = 30.0

    def should_retry_status(self, status: int, mode: RetryMode, attempt: int) -> bool:
        if attempt >= self.max_retries or mode == "never":
            return False
        statuses = _NOT_ACCEPTED if mode == "submit" else _TRANSIENT
        return status in statuses

    def submit_outcome_unknown(self, status: int, mode: RetryMode) -> bool:
        """A final answer to a plain submission after which the job may nonetheless exist."""
        return mode == "submit" and status in MAYBE_ACCEPTED

    def should_retry_network(self, mode: RetryMode, attempt: int, *, sent: bool) -> bool:
        """A transport failure; ``sent`` is False when the connection never opened."""
        if attempt >= self.max_retries or mode == "never":
            return False
        # A submit whose body may have reached the provider could have created a job: resending
        # risks paying twice, so only a connection that never opened is retried — unless the
        # provider deduplicates on a key the request carries.
        return mode in ("idempotent", "submit-deduplicated") or not sent

    def delay(
        self,
        attempt: int,
        headers: Mapping[str, str] | None = None,
        *,
        now: float = 0.0,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``; None means give up (hint too long)."""
        if headers:
            hinted = parse_retry_after(headers, now=now)
            if hinted is not None:
                return hinted if hinted <= self.max_delay else None
        ceiling = min(self.max_delay, self.initial_delay * 2.0**attempt)
        jitter = float((rng or random).uniform(0.5, 1.0))
        return ceiling * jitter
