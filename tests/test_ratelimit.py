"""The provider's sending rate, shared through Redis by every worker (a GCRA token bucket)."""

import threading

import pytest

from mailer import ratelimit, sending
from mailer.models import Batch
from mailer.sending import Outcome
from tests.test_send_batch import fan_out


def test_no_limit_grants_at_once(settings):
    settings.PROVIDER_RATE_LIMIT = 0
    assert ratelimit.reserve(10_000) == ratelimit.Reservation(True, 0.0)


def test_a_seconds_worth_goes_at_once_then_senders_wait_their_turn():
    first = ratelimit.reserve(100, rate=100)
    second = ratelimit.reserve(100, rate=100)
    third = ratelimit.reserve(300, rate=100)
    fourth = ratelimit.reserve(1, rate=100)
    assert first.granted and first.wait == 0
    assert second.granted and second.wait == 0  # within the one-second burst
    assert third.granted and 0.9 < third.wait <= 1.0  # after the first 200
    assert fourth.granted and 3.9 < fourth.wait <= 4.0  # after the 300 reserved before it


def test_a_reservation_that_would_wait_too_long_is_refused_and_reserves_nothing():
    ratelimit.reserve(500, rate=100)
    refused = ratelimit.reserve(100, rate=100, max_wait=2)
    assert not refused.granted and 3.9 < refused.wait <= 4.0
    again = ratelimit.reserve(100, rate=100, max_wait=5)
    assert again.granted and 3.9 < again.wait <= 4.0  # the refused one took no capacity


def test_workers_share_one_limit():
    """Eight concurrent senders of 50 at 100 per second: together they are spread over the
    same four seconds a single sender would need, each with its own slot."""
    waits: list[float] = []
    lock = threading.Lock()

    def worker():
        reservation = ratelimit.reserve(50, rate=100)
        with lock:
            waits.append(reservation.wait)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    slots = sorted(round(w * 2) / 2 for w in waits)
    assert slots == [0.0, 0.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5]


@pytest.mark.django_db
def test_a_batch_over_the_rate_comes_back_later_without_calling(local_provider, settings):
    settings.PROVIDER_BATCH_SIZE = 50
    settings.PROVIDER_HONOURS_IDEMPOTENCY_KEY = True
    settings.PROVIDER_RATE_LIMIT = 10
    settings.DELIVERY_BATCH_LEASE = 4  # a batch waits at most half its lease for its turn
    digest = fan_out(30)
    [batch_id] = Batch.objects.filter(digest=digest).values_list("id", flat=True)
    ratelimit.reserve(100, rate=10)  # another worker has just taken ten seconds' worth

    result = sending.send_batch(batch_id)

    assert result.outcome == Outcome.RATE_LIMITED and 8 < result.retry_in <= 9
    assert local_provider.stats()["calls"] == 0
    assert Batch.objects.get(pk=batch_id).status == Batch.Status.PENDING
