"""The service's own infrastructure failing mid-edition: Redis (broker, cache, counters)
restarted, and the database connections of the workers cut while batches are with the provider.
Every reader still gets exactly one copy and the edition's figures add up."""

import os
import time
from datetime import timedelta

import pytest
from celery import Celery
from django.db import connection

from mailer.models import Digest
from mailer.sending import queue
from mailer.sending.control import restart_stalled
from mailer.tasks.delivery import start_edition
from tests.fixtures.worker import WorkerProcess, database_url_for_subprocess
from tests.test_delivery_fanout import add_subscribers, make_edition
from tests.test_faults_support import ThrowawayRedis, assert_each_once, assert_figures_add_up, wait_until_sent
from tests.test_faults_support import worker_env as support_worker_env

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def worker_env(local_provider, **extra: str) -> dict[str, str]:
    return support_worker_env(
        local_provider,
        PROVIDER_BATCH_SIZE="30",
        CELERY_VISIBILITY_TIMEOUT="2",
        DELIVERY_BATCH_LEASE="3",
        DELIVERY_RETRY_BACKOFF_MS="200",
        DELIVERY_RETRY_BACKOFF_MAX="2",
        **extra,
    )


@pytest.fixture
def throwaway_redis():
    server = ThrowawayRedis().start()
    yield server
    server.cleanup()


def test_redis_restarted_mid_edition_loses_and_doubles_nothing(throwaway_redis, local_provider, monkeypatch):
    readers = 600
    add_subscribers(readers)
    digest = make_edition()
    local_provider.set_faults(latency_ms=300)
    # A worker whose broker, cache and counters all live in the Redis that will restart.
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.test_worker",
        DATABASE_URL=database_url_for_subprocess(),
        REDIS_URL=throwaway_redis.url,
        **worker_env(local_provider),
    )
    worker = WorkerProcess(env).start()
    sweeps: list[int] = []
    # Not the current app: the tasks of later tests must keep using the project's broker.
    broker = Celery("faults", broker=throwaway_redis.url, set_as_current=False)
    try:
        broker.send_task(queue.START_EDITION, args=[digest.pk])
        local_provider.wait_for(90, timeout=30)

        throwaway_redis.stop()  # as `docker compose restart redis` does: SIGTERM, then start
        time.sleep(1.5)
        throwaway_redis.start()
        assert local_provider.stats()["messages"] < readers, "the edition finished before the restart"

        # A message in flight when Redis went away can be lost (a batch then waits, pending,
        # with nothing queued for it). Beat's sweep queues a quiet edition's pending batches
        # again; it runs here as beat would, with the quiet period cut from minutes to seconds.
        monkeypatch.setattr(queue, "app", broker)
        deadline = time.monotonic() + 90
        while Digest.objects.get(pk=digest.pk).status != Digest.Status.SENT and time.monotonic() < deadline:
            time.sleep(1)
            sweeps.append(restart_stalled(quiet_for=timedelta(seconds=4))["restarted"])
        wait_until_sent(digest, timeout=1)
    finally:
        worker.stop()
        broker.close()
    assert_each_once(local_provider, f"Redis restarted mid-edition (sweep restarts: {sum(sweeps)})", readers)
    assert_figures_add_up(digest, total=readers, sent=readers)


def drop_other_connections() -> int:
    """Terminate every other session on the test database (the workers'), as a database
    failover or a proxy restart does; returns how many were cut."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_database_connections_dropped_mid_batch_lose_and_double_nothing(worker_process, local_provider):
    if connection.vendor != "postgresql":
        pytest.skip("cutting live database sessions needs PostgreSQL (CI runs it there)")
    readers = 120
    add_subscribers(readers)
    digest = make_edition()
    # Calls (1.5 s) longer than the time between cuts (1 s): every call in the first seconds
    # is cut between "provider accepted" and "recorded as sent", including the calls of the
    # workers that take a cut batch over once its lease has run out.
    local_provider.set_faults(latency_ms=1500)
    worker_process(concurrency=2, **worker_env(local_provider))
    start_edition.delay(digest.pk)
    local_provider.wait_for(1, timeout=30)

    cut = 0
    for _ in range(8):
        cut += drop_other_connections()
        time.sleep(1)
    assert cut > 0
    assert Digest.objects.get(pk=digest.pk).status == Digest.Status.SENDING

    wait_until_sent(digest, timeout=40)
    assert_each_once(local_provider, f"database sessions cut 8 times ({cut} sessions)", readers)
    assert_figures_add_up(digest, total=readers, sent=readers)
