"""Whole editions through a real Celery worker on Redis and the local provider: counted at the
provider, once per recipient, in batch calls; with faults; with unsubscribes mid-send."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from mailer import selectors, sending
from mailer.models import Batch, Delivery, Digest
from mailer.sending import queue
from mailer.tasks.delivery import start_edition, sweep
from subscribers import services
from subscribers.models import ConsentRecord, Subscriber
from tests.test_delivery_fanout import add_subscribers, make_edition

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _fast_retries(settings):
    settings.PROVIDER_HONOURS_IDEMPOTENCY_KEY = True
    settings.DELIVERY_RETRY_BACKOFF_MS = 50
    settings.DELIVERY_RETRY_BACKOFF_MAX = 1
    settings.DELIVERY_MAX_RETRIES = 12
    settings.PROVIDER_OUTAGE_THRESHOLD = 6
    settings.PROVIDER_OUTAGE_PROBE_SECONDS = 1


def wait_until_finished(digest: Digest, timeout: float = 45, status: str = Digest.Status.SENT) -> Digest:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        digest.refresh_from_db()
        if digest.status == status:
            return digest
        time.sleep(0.1)
    figures = selectors.edition_figures(digest.pk)
    raise AssertionError(f"edition still {digest.status} ({digest.status_note}) after {timeout}s: {figures}")


def assert_exactly_once(local_provider, count: int) -> dict:
    stats = local_provider.stats()
    assert stats["messages"] == count and stats["duplicates"] == 0, stats
    recipients = {m["recipient"] for m in local_provider.messages(limit=count + 10)}
    assert len(recipients) == count
    return stats


def test_2000_recipient_edition_arrives_once_each_in_batch_calls(celery_worker, local_provider, settings):
    settings.PROVIDER_BATCH_SIZE = 100
    add_subscribers(2000)
    digest = make_edition()

    start_edition.delay(digest.pk)

    wait_until_finished(digest)
    stats = assert_exactly_once(local_provider, 2000)
    assert stats["accepted_calls"] == 20  # one call per batch of 100, not one per recipient
    figures = selectors.edition_figures(digest.pk)
    assert (figures["total"], figures["sent"], figures["pending"], figures["failed"]) == (2000, 2000, 0, 0)
    assert digest.finished_at and digest.total_recipients == 2000


def test_exactly_once_with_30_percent_of_calls_failing(celery_worker, local_provider, settings):
    settings.PROVIDER_BATCH_SIZE = 100
    add_subscribers(2000)
    digest = make_edition()
    # 30% answered 5xx/429 outright, and some more taken by the provider and then answered 500.
    local_provider.set_faults(error_rate=0.3, accept_then_fail_rate=0.1, seed=11)

    start_edition.delay(digest.pk)

    wait_until_finished(digest)
    stats = assert_exactly_once(local_provider, 2000)
    assert stats["calls"] > 20  # the failures were retried
    assert Delivery.objects.filter(digest=digest, status=Delivery.Status.SENT).count() == 2000
    assert set(Batch.objects.filter(digest=digest).values_list("status", flat=True)) == {Batch.Status.SENT}


def test_unsubscribes_during_the_send_are_honoured_for_batches_not_yet_sent(
    celery_worker, local_provider, settings
):
    settings.PROVIDER_BATCH_SIZE = 50
    subscribers = add_subscribers(1000)
    digest = make_edition()
    local_provider.set_faults(latency_ms=300)  # slow enough to act while it sends

    start_edition.delay(digest.pk)
    local_provider.wait_for(1, timeout=15)
    leaving = subscribers[-40:]  # the last batch goes out last
    for subscriber in leaving:
        services.unsubscribe(
            subscriber, consent=services.Consent(source=ConsentRecord.Source.EMAIL), digest_id=digest.pk
        )

    wait_until_finished(digest)
    received = {m["recipient"]: m for m in local_provider.messages(limit=2000)}
    deliveries = Delivery.objects.filter(digest=digest, subscriber__in=leaving)
    skipped = deliveries.filter(status=Delivery.Status.SKIPPED)
    assert skipped.count() > 0
    assert all(d.error.startswith("Unsubscribed") for d in skipped)
    for delivery in deliveries.select_related("subscriber"):
        assert delivery.unsubscribed_at is not None  # credited to the edition
        if delivery.status == Delivery.Status.SKIPPED:
            assert delivery.subscriber.email not in received
    # Whoever was still sent it had a batch already claimed when they left: no batch claimed
    # after an unsubscribe went to that reader.
    for delivery in deliveries.filter(status=Delivery.Status.SENT).select_related("subscriber", "batch"):
        assert delivery.batch.submitted_at <= delivery.subscriber.unsubscribed_at
    assert_exactly_once(local_provider, 1000 - skipped.count())
    figures = selectors.edition_figures(digest.pk)
    assert figures["sent"] + figures["skipped"] == figures["total"] == 1000
    assert (
        Subscriber.objects.filter(pk__in=[s.pk for s in leaving], status=Subscriber.Status.ACTIVE).count()
        == 0
    )


def test_beat_sweep_takes_over_a_batch_a_dead_worker_left_submitting(
    celery_worker, local_provider, settings, monkeypatch
):
    settings.PROVIDER_BATCH_SIZE = 50
    settings.DELIVERY_BATCH_LEASE = 1
    add_subscribers(30)
    digest = make_edition()
    with monkeypatch.context() as m:  # the ledger is written, but its batch task is lost
        m.setattr(queue, "queue_batches", lambda ids: None)
        sending.start_edition(digest.pk)
    Batch.objects.filter(digest=digest).update(
        status=Batch.Status.SUBMITTING, submitted_at=timezone.now() - timedelta(seconds=5)
    )

    sweep.delay()

    wait_until_finished(digest)
    assert_exactly_once(local_provider, 30)


def test_an_outage_pauses_the_edition_and_it_resumes_by_itself(celery_worker, local_provider, settings):
    settings.PROVIDER_BATCH_SIZE = 50
    settings.PROVIDER_OUTAGE_THRESHOLD = 3
    add_subscribers(300)
    digest = make_edition()
    local_provider.set_faults(outage=True)

    start_edition.delay(digest.pk)

    deadline = time.monotonic() + 30
    while digest.status != Digest.Status.PAUSED and time.monotonic() < deadline:
        time.sleep(0.05)
        digest.refresh_from_db()
    assert digest.status == Digest.Status.PAUSED
    assert digest.status_note.startswith("Paused automatically")
    assert local_provider.stats()["messages"] == 0

    local_provider.clear_faults()  # the provider is back: nobody touches the edition

    wait_until_finished(digest)
    stats = assert_exactly_once(local_provider, 300)
    assert stats["by_status"].get("503", 0) >= 3
    assert not Delivery.objects.filter(digest=digest).exclude(status=Delivery.Status.SENT).exists()


def test_editor_pause_stops_the_send_and_resume_finishes_it_exactly_once(
    celery_worker, local_provider, settings
):
    settings.PROVIDER_BATCH_SIZE = 50
    add_subscribers(1000)
    digest = make_edition()
    local_provider.set_faults(latency_ms=100)

    start_edition.delay(digest.pk)
    local_provider.wait_for(200, timeout=20)
    assert sending.pause_edition(digest.pk)
    deadline = time.monotonic() + 10  # calls already under way finish and are recorded
    while Batch.objects.filter(digest=digest, status=Batch.Status.SUBMITTING).exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    paused_at = local_provider.stats()["messages"]
    time.sleep(1)
    assert local_provider.stats()["messages"] == paused_at < 1000
    digest.refresh_from_db()
    assert digest.status == Digest.Status.PAUSED
    assert Delivery.objects.filter(digest=digest, status=Delivery.Status.SENT).count() == paused_at

    assert sending.resume_edition(digest.pk)

    wait_until_finished(digest)
    assert_exactly_once(local_provider, 1000)


def test_a_provider_that_keeps_failing_fails_the_batch_with_the_reason_after_the_retries(
    celery_worker, local_provider, settings
):
    settings.PROVIDER_BATCH_SIZE = 50
    settings.DELIVERY_MAX_RETRIES = 2
    settings.PROVIDER_OUTAGE_THRESHOLD = 0  # no automatic pause: see the retries run out
    add_subscribers(60)
    digest = make_edition()
    local_provider.set_faults(error_rate=1.0, status_codes=[502])

    start_edition.delay(digest.pk)

    # Nothing could be sent: the edition ends "failed", not a green "sent".
    wait_until_finished(digest, status=Digest.Status.FAILED)
    assert local_provider.stats()["calls"] == 6  # two batches, three attempts each
    errors = set(Delivery.objects.filter(digest=digest).values_list("status", "error"))
    assert errors == {
        (
            Delivery.Status.FAILED,
            "The provider kept failing (HTTP 502: Bad gateway); gave up after 3 attempts.",
        )
    }
    figures = selectors.edition_figures(digest.pk)
    assert (figures["failed"], figures["total"]) == (60, 60)
