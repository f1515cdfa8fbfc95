"""When reconcile sends a subscription's bundle again."""

from __future__ import annotations

from datetime import timedelta

MAX_BACKOFF = timedelta(hours=1)


def resend_wait(grace: timedelta, rejections: int) -> timedelta:
    """How long a bundle stays "in flight" before reconcile sends it again: the grace time when it
    may just be lost; after failed answers in a row (a refusal: a rule, a missing trust or
    entitlement; or destination_error: its Pulp, disk or createrepo_c failing. Retrying helps only
    once someone fixes the destination) twice as long each time, at most an hour (or the grace time,
    if that is longer), so a refused subscription does not rebuild or re-send a bundle every pass."""
    if rejections <= 0:
        return grace
    return min(grace * (1 << min(rejections - 1, 20)), max(grace, MAX_BACKOFF))
