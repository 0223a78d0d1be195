"""Two broker queues (worker/celery.py): an edition's fan-out and batches go to "bulk", what a
reader or an editor waits on stays in "celery", and every worker takes from both in turn. So a
sign-up made while a big edition is going out waits for one batch, not for the whole edition.
Workers also lower their CPU priority (WORKER_NICENESS) so that the web comes first."""

import json
import os
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings

from config import heartbeat
from mailer import dashboard
from mailer.models import Digest
from mailer.sending import queue
from mailer.tasks.delivery import start_edition
from subscribers.models import Subscriber
from subscribers.tasks import queue_signup, send_confirmation, send_confirmations
from tests.test_delivery_fanout import add_subscribers, make_edition
from tests.test_faults_support import wait_until_sent
from worker import app

BULK = (
    "mailer.tasks.delivery.start_edition",
    "mailer.tasks.delivery.send_batch",
    "mailer.tasks.delivery.probe_provider",
)
READERS = (
    "subscribers.tasks.process_signup",
    "subscribers.tasks.process_signups",
    "subscribers.tasks.send_confirmation",
    "subscribers.tasks.send_confirmations",
    "subscribers.tasks.send_welcome",
    "mailer.tasks.digests.tick",
    "mailer.tasks.delivery.sweep",
    "mailer.tasks.feeds.poll_feeds",
)


def broker() -> redis.Redis:
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def waiting(queue_name: str) -> list[str]:
    """Names of the tasks waiting in one broker queue, oldest first."""
    return [json.loads(raw)["headers"]["task"] for raw in reversed(broker().lrange(queue_name, 0, -1))]


def test_an_editions_tasks_are_routed_to_bulk_and_every_other_task_to_celery():
    app.loader.import_default_modules()  # every app's tasks registered, as in a worker
    routed = {
        name: app.amqp.router.route({}, name)["queue"].name
        for name in app.tasks
        if not name.startswith("celery.")
    }
    assert {name for name, queue_name in routed.items() if queue_name == "bulk"} == set(BULK)
    assert set(READERS) <= {name for name, queue_name in routed.items() if queue_name == "celery"}
    assert set(routed.values()) == {"bulk", "celery"}
    # Every worker consumes both unless told otherwise, and the dashboard counts both.
    assert sorted(q.name for q in app.conf.task_queues) == ["bulk", "celery"]
    assert sorted(name for name, _ in dashboard.QUEUES) == ["bulk", "celery"]


def test_queued_tasks_land_in_the_redis_list_of_their_queue(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        queue.queue_fanout(1)
        queue.queue_batches([2, 3])
        queue.queue_probe(1, countdown=60)
    queue_signup({"email": "reader@example.org"})  # never run: no worker here
    send_confirmation.delay(4)
    send_confirmations.delay([5, 6])

    assert waiting("bulk") == [queue.START_EDITION, queue.SEND_BATCH, queue.SEND_BATCH, queue.PROBE_PROVIDER]
    assert waiting("celery") == [
        "subscribers.tasks.process_signups",
        "subscribers.tasks.send_confirmation",
        "subscribers.tasks.send_confirmations",
    ]


@pytest.mark.worker
def test_a_sign_up_during_a_big_edition_is_confirmed_before_the_edition_is_sent(
    celery_worker, local_provider, client, settings
):
    # One recipient per batch and a slow provider: the edition is 48 batch tasks of at least
    # 0.3 s each, for a worker that runs two at a time.
    settings.PROVIDER_BATCH_SIZE = 1
    recipients = 48
    add_subscribers(recipients)
    digest = make_edition(subject="Big edition")
    local_provider.set_faults(latency_ms=300)
    start_edition.delay(digest.pk)
    local_provider.wait_for(1, timeout=20)
    assert len(waiting("bulk")) > recipients // 2  # the edition's batches are queued

    response = client.post(
        "/api/subscribe", json.dumps({"email": "new-reader@example.org"}), content_type="application/json"
    )
    assert response.status_code == 202
    deadline = time.monotonic() + 20
    while not (confirmation := local_provider.messages(to="new-reader@example.org")):
        assert time.monotonic() < deadline, "no confirmation email within 20 s"
        time.sleep(0.05)

    # The reader was stored and mailed while the edition still had batches waiting.
    assert Subscriber.objects.get(email="new-reader@example.org").status == Subscriber.Status.PENDING
    assert "/confirm/" in confirmation[0]["text"]
    digest.refresh_from_db()
    assert digest.status == Digest.Status.SENDING and waiting("bulk")

    wait_until_sent(digest, timeout=60)
    edition = [m for m in local_provider.messages() if m["subject"] == "Big edition"]
    assert sorted(m["recipient"] for m in edition) == sorted(
        f"reader{i}@example.org" for i in range(recipients)
    )
    # With one queue the confirmation comes after every copy of the edition (the edition is
    # sent by the time it arrives); here at least a third of the edition went out after it.
    after = [m for m in edition if m["id"] > confirmation[0]["id"]]
    assert len(after) >= recipients // 3, (len(after), recipients)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.worker
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc (Linux)")
def test_a_worker_process_and_its_pool_run_at_the_configured_lower_priority(worker_process):
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    worker = worker_process(concurrency=2, WORKER_NICENESS="5")
    deadline = time.monotonic() + 30
    # Started: its heartbeat is in Redis and its pool's two processes are forked.
    while not (
        heartbeat.live_workers(conn=heartbeat.client()) and len(pool := _children(worker.proc.pid)) == 2
    ):
        assert worker.proc.poll() is None, "the worker exited"
        assert time.monotonic() < deadline, "the worker did not start within 30 s"
        time.sleep(0.1)

    for pid in [worker.proc.pid, *pool]:
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(ours + 5, 19)
    assert os.getpriority(os.PRIO_PROCESS, 0) == ours  # the test run itself is left alone
