from datetime import timedelta

from iss_plugin.domain.resend import MAX_BACKOFF, resend_wait

GRACE = timedelta(minutes=5)


def test_a_lost_bundle_waits_the_grace_time():
    assert resend_wait(GRACE, 0) == GRACE


def test_refusals_in_a_row_double_the_wait_up_to_an_hour():
    assert [resend_wait(GRACE, n) for n in (1, 2, 3, 4)] == [GRACE, 2 * GRACE, 4 * GRACE, 8 * GRACE]
    assert resend_wait(GRACE, 5) == MAX_BACKOFF == resend_wait(GRACE, 10_000)


def test_a_grace_time_longer_than_the_cap_is_kept():
    assert resend_wait(timedelta(hours=3), 7) == timedelta(hours=3)
