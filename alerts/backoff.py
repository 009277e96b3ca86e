"""Retry timing of webhook deliveries: exponential backoff with full jitter, and the policy.

Full jitter (a uniform draw between zero and the exponential ceiling) spreads the
retries of many events that failed together, e.g. during a receiver's outage, so they
do not all come back at the same instant when it recovers.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


class InvalidPolicyError(ValueError):
    """A backoff or delivery-policy parameter is outside its allowed values."""

    def __init__(self, name: str, allowed: str, given: object) -> None:
        self.name = name
        self.allowed = allowed
        self.given = given
        super().__init__(f"{name} must be {allowed}; got {given!r}")


def backoff_ceiling(
    attempt: int, *, base_s: float = 1.0, factor: float = 2.0, max_s: float = 300.0
) -> float:
    """Returns the largest delay after failed attempt ``attempt`` (1-based).

    That is ``base_s * factor ** (attempt - 1)``, at most ``max_s``.
    """
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise InvalidPolicyError("attempt", "an integer >= 1", attempt)
    if not (math.isfinite(base_s) and base_s > 0):
        raise InvalidPolicyError("base_s", "a finite number > 0", base_s)
    if not (math.isfinite(factor) and factor >= 1):
        raise InvalidPolicyError("factor", "a finite number >= 1", factor)
    if not (math.isfinite(max_s) and max_s >= base_s):
        raise InvalidPolicyError("max_s", f"a finite number >= base_s ({base_s})", max_s)
    try:
        return min(max_s, base_s * factor ** (attempt - 1))
    except OverflowError:
        return max_s


def next_delay(
    attempt: int,
    *,
    base_s: float = 1.0,
    factor: float = 2.0,
    max_s: float = 300.0,
    rng: random.Random,
) -> float:
    """Returns the seconds to wait after failed attempt ``attempt`` (1-based), with full jitter.

    The delay is drawn uniformly from ``[0, backoff_ceiling(attempt, ...)]``.
    """
    return rng.uniform(0.0, backoff_ceiling(attempt, base_s=base_s, factor=factor, max_s=max_s))


@dataclass(frozen=True, kw_only=True, slots=True)
class DeliveryPolicy:
    """How webhook deliveries are made, retried and given up.

    - ``timeout_s``: the HTTP timeout of one attempt (per socket operation);
    - ``max_age_s``: an event older than this (from its creation) whose attempt fails
      becomes dead (kept, counted, redeliverable) instead of being retried;
    - ``backoff_base_s``, ``backoff_factor``, ``backoff_max_s``: see :func:`next_delay`;
    - ``concurrency``: requests in flight at most, per deliverer;
    - ``lease_s``: how long a claimed batch is held before another deliverer may take it;
    - ``batch_size``: events claimed at a time;
    - ``idle_sleep_s``: the pause of ``run_forever`` when nothing was due.
    """

    timeout_s: float = 10.0
    max_age_s: float = 86_400.0
    backoff_base_s: float = 1.0
    backoff_factor: float = 2.0
    backoff_max_s: float = 300.0
    concurrency: int = 8
    lease_s: float = 120.0
    batch_size: int = 32
    idle_sleep_s: float = 0.5

    def __post_init__(self) -> None:
        for name in ("timeout_s", "max_age_s", "lease_s", "idle_sleep_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise InvalidPolicyError(name, "a finite number > 0", value)
        for name in ("concurrency", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidPolicyError(name, "an integer >= 1", value)
        # Validates the backoff parameters with the messages of backoff_ceiling.
        try:
            backoff_ceiling(
                1, base_s=self.backoff_base_s, factor=self.backoff_factor, max_s=self.backoff_max_s
            )
        except InvalidPolicyError as error:
            raise InvalidPolicyError(f"backoff_{error.name}", error.allowed, error.given) from None
        # A batch is sent in ceil(batch/concurrency) rounds of at most timeout_s each; a
        # lease shorter than that would let another deliverer claim and send an event this
        # one is still about to send.
        needed = self.timeout_s * math.ceil(self.batch_size / self.concurrency)
        if self.lease_s <= needed:
            raise InvalidPolicyError(
                "lease_s",
                f"> timeout_s * ceil(batch_size / concurrency) = {needed:g}",
                self.lease_s,
            )
