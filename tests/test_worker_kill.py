"""A worker SIGKILLed in the middle of an edition, and another started: every recipient still
gets the edition exactly once, counted at the provider."""

import time

import pytest

from mailer import selectors
from mailer.models import Batch, Delivery, Digest
from mailer.tasks.delivery import start_edition
from tests.test_delivery_fanout import add_subscribers, make_edition
from tests.test_faults_support import worker_env as support_worker_env

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

VISIBILITY_TIMEOUT = 2  # seconds before a dead worker's unacknowledged tasks go to another


def worker_env(local_provider) -> dict[str, str]:
    return support_worker_env(
        local_provider,
        PROVIDER_BATCH_SIZE="50",
        CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT),
        DELIVERY_BATCH_LEASE="3",
    )


def wait_until_finished(digest: Digest, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        digest.refresh_from_db()
        if digest.status == Digest.Status.SENT:
            return
        time.sleep(0.2)
    raise AssertionError(
        f"edition still {digest.status} after {timeout}s: {selectors.edition_figures(digest.pk)}"
    )


def test_worker_killed_mid_edition_and_restarted_sends_exactly_once(worker_process, local_provider):
    add_subscribers(2000)
    digest = make_edition()
    # Slow calls, so the kill lands while batches are with the provider.
    local_provider.set_faults(latency_ms=120)
    env = worker_env(local_provider)
    first = worker_process(concurrency=2, **env)

    start_edition.delay(digest.pk)
    local_provider.wait_for(300, timeout=30)
    first.kill()
    in_flight = Batch.objects.filter(digest=digest, status=Batch.Status.SUBMITTING).count()
    sent_before = Delivery.objects.filter(digest=digest, status=Delivery.Status.SENT).count()
    assert sent_before < 2000, "the edition finished before the kill; nothing was tested"

    # The dead worker's tasks become visible again after the timeout; the new worker takes them.
    time.sleep(VISIBILITY_TIMEOUT + 1)
    worker_process(concurrency=2, **env)
    wait_until_finished(digest, timeout=60)

    stats = local_provider.stats()
    assert stats["messages"] == 2000 and stats["duplicates"] == 0, (stats, in_flight)
    assert len({m["recipient"] for m in local_provider.messages(limit=2100)}) == 2000
    figures = selectors.edition_figures(digest.pk)
    assert (figures["total"], figures["sent"], figures["failed"], figures["skipped"]) == (2000, 2000, 0, 0)
