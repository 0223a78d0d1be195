"""Workers SIGKILLed again and again during one edition, at random moments (some during a
provider call), each time replaced by a fresh worker process: nothing lost, nothing doubled."""

import random
import time

import pytest

from mailer.models import Delivery
from mailer.tasks.delivery import start_edition
from tests.test_delivery_fanout import add_subscribers, make_edition
from tests.test_faults_support import assert_each_once, assert_figures_add_up, wait_until_sent
from tests.test_faults_support import worker_env as support_worker_env

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

RECIPIENTS = 800
KILLS = 3
VISIBILITY_TIMEOUT = 2  # seconds before a dead worker's unacknowledged tasks go to another


def worker_env(local_provider) -> dict[str, str]:
    return support_worker_env(
        local_provider,
        PROVIDER_BATCH_SIZE="40",
        CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT),
        DELIVERY_BATCH_LEASE="3",
    )


def recorded(local_provider) -> int:
    return local_provider.stats()["messages"]


def test_repeated_sigkills_at_random_points_send_each_reader_exactly_once(worker_process, local_provider):
    add_subscribers(RECIPIENTS)
    digest = make_edition()
    # Slow provider calls: most kills land while a batch is with the provider, between
    # "provider accepted" and "recorded as sent", the window that matters.
    local_provider.set_faults(latency_ms=300)
    env = worker_env(local_provider)
    rng = random.Random(20261125)
    start_edition.delay(digest.pk)

    kills = []
    for _ in range(KILLS):
        before = recorded(local_provider)
        worker = worker_process(concurrency=2, **env)
        local_provider.wait_for(before + 1, timeout=45)  # this worker is sending
        time.sleep(rng.uniform(0.0, 0.8))
        worker.kill()
        kills.append(
            (
                recorded(local_provider),
                Delivery.objects.filter(digest=digest, status=Delivery.Status.SENT).count(),
            )
        )
        # Let the dead worker's unacknowledged tasks become visible to the next one.
        time.sleep(VISIBILITY_TIMEOUT + 0.5)

    assert kills[-1][0] < RECIPIENTS, f"the edition finished before the last kill: {kills}"
    worker_process(concurrency=2, **env)
    wait_until_sent(digest, timeout=90)

    print(f"\nkills (provider copies, ledger sent) at each kill: {kills}")
    assert_each_once(local_provider, f"{KILLS} SIGKILLs mid-edition", RECIPIENTS)
    assert_figures_add_up(digest, total=RECIPIENTS, sent=RECIPIENTS)
