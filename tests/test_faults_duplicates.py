"""Work that arrives twice: two beat processes ticking at once, and the broker handing the same
task to two workers (a visibility timeout shorter than the provider call, plus messages
published twice). Every edition is made and claimed once, every reader mailed once."""

import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from mailer.models import Article, Batch, Digest, Schedule
from mailer.sending import queue
from mailer.tasks.delivery import start_edition
from tests.factories import ArticleFactory
from tests.fixtures.worker import ROOT, database_url_for_subprocess
from tests.test_delivery_fanout import add_subscribers, make_edition
from tests.test_faults_support import (
    assert_each_once,
    assert_figures_add_up,
    kill_group,
    wait_until_sent,
    worker_env,
)
from worker import app

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# A real `celery beat` (celery.apps.beat.Beat) whose only entry is the production tick, four
# times a second instead of once a minute so the test does not wait.
BEAT = """
import sys
from worker import app
app.conf.beat_schedule = {"tick": {"task": "mailer.tasks.digests.tick", "schedule": 0.25}}
app.Beat(schedule=sys.argv[1], max_interval=0.25, loglevel="WARNING", quiet=True).run()
"""


@pytest.fixture
def beat_processes(tmp_path):
    started: list[subprocess.Popen] = []

    def start(name: str) -> subprocess.Popen:
        import os

        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings.test_worker",
            DATABASE_URL=database_url_for_subprocess(),
            REDIS_URL=settings.REDIS_URL,
            LOG_LEVEL="WARNING",
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", BEAT, str(tmp_path / f"{name}-schedule")],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        kill_group(proc)


def test_two_beats_at_once_make_and_send_each_edition_once(worker_process, beat_processes, local_provider):
    readers = 150
    add_subscribers(readers)
    past = timezone.now() - timedelta(minutes=2)
    scheduled = [make_edition(status=Digest.Status.SCHEDULED, scheduled_for=past) for _ in range(2)]
    # A daily schedule due now, and an article published after the editions above, for it.
    ArticleFactory(title="Fresh for the schedule", published_at=timezone.now())
    schedule = Schedule.objects.create(
        name="Morning", send_time=(timezone.now() - timedelta(minutes=1)).time(), next_run_at=past
    )

    worker_process(concurrency=2, **worker_env(local_provider, PROVIDER_BATCH_SIZE="50"))
    beats = [beat_processes("beat-a"), beat_processes("beat-b")]

    made = wait_for(lambda: Digest.objects.filter(schedule=schedule).exists(), timeout=30)
    assert made, "no beat made the schedule's edition"
    editions = [*scheduled, Digest.objects.get(schedule=schedule)]
    for digest in editions:
        wait_until_sent(digest, timeout=60)
    time.sleep(1)  # both beats keep ticking: nothing more may happen

    assert all(beat.poll() is None for beat in beats), "a beat process died"
    assert Digest.objects.filter(schedule=schedule).count() == 1
    assert Digest.objects.exclude(status=Digest.Status.SENT).count() == 0
    assert_each_once(local_provider, "two beats ticking at once (3 editions)", readers * len(editions))
    for digest in editions:
        assert_figures_add_up(digest, total=readers, sent=readers)
        assert Batch.objects.filter(digest=digest).count() == 3
    assert Article.objects.count() == 3


def test_tasks_delivered_twice_by_the_broker_send_once(worker_process, local_provider):
    readers = 300
    add_subscribers(readers)
    digest = make_edition()
    # Each provider call takes longer than the visibility timeout, so the broker hands every
    # running send_batch to the second worker as well while the first is still in it.
    local_provider.set_faults(latency_ms=1500)
    env = worker_env(
        local_provider,
        PROVIDER_BATCH_SIZE="30",
        CELERY_VISIBILITY_TIMEOUT="1",
        DELIVERY_BATCH_LEASE="4",
    )
    worker_process(concurrency=2, **env)
    start_edition.delay(digest.pk)
    start_edition.delay(digest.pk)  # the start message twice
    local_provider.wait_for(1, timeout=30)
    # And every batch's message published twice more, as a broker that redelivers would.
    batch_ids = list(Batch.objects.filter(digest=digest).values_list("id", flat=True))
    for _ in range(2):
        for batch_id in batch_ids:
            app.send_task(queue.SEND_BATCH, args=[batch_id])
    worker_process(concurrency=2, **env)

    wait_until_sent(digest, timeout=60)
    assert len(batch_ids) == readers // 30
    assert_each_once(local_provider, "tasks delivered twice (visibility timeout + republished)", readers)
    assert_figures_add_up(digest, total=readers, sent=readers)
    assert local_provider.stats()["accepted_calls"] <= len(batch_ids) * 2  # replays by key at most


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False
