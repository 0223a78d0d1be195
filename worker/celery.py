"""The Celery application: broker, beat schedule and routing. Tasks live in each app's tasks.py."""

import contextlib
import os
from pathlib import Path

from celery import Celery
from celery.signals import celeryd_init
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("newsletter")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["subscribers", "mailer"])
app.autodiscover_tasks(["subscribers"], related_name="import_jobs")  # the admin's large CSV imports

# Schedules live in the database; beat only ticks. A tick claims what is due under a row lock,
# so two beats (or a restart) never start one edition twice and never lose one.
app.conf.beat_schedule = {
    "claim-due-digests": {"task": "mailer.tasks.digests.tick", "schedule": 60.0},
    "poll-feeds": {"task": "mailer.tasks.feeds.poll_feeds", "schedule": 60.0},
    # Delivery housekeeping: batches of dead workers past their lease, uncertain batches.
    "delivery-sweep": {"task": "mailer.tasks.delivery.sweep", "schedule": 60.0},
    # Sign-ups whose drain was lost with its worker (a drain is queued by the sign-ups themselves).
    "signup-inbox": {"task": "subscribers.tasks.process_signups", "schedule": 60.0},
}
# Two queues, both consumed by every worker unless started with -Q: "celery" for what a reader
# or an editor waits on (sign-ups, confirmations, test sends, feeds, beat's ticks) and "bulk"
# for an edition's fan-out and batches. Kombu's Redis transport takes from the two in turn, so a
# sign-up queued during a million-recipient send waits for one batch, not for the whole edition.
app.conf.task_default_queue = "celery"
app.conf.task_queues = (Queue("celery", routing_key="celery"), Queue("bulk", routing_key="bulk"))
app.conf.task_routes = {
    "mailer.tasks.delivery.start_edition": {"queue": "bulk"},
    "mailer.tasks.delivery.send_batch": {"queue": "bulk"},
    "mailer.tasks.delivery.probe_provider": {"queue": "bulk"},
}


@celeryd_init.connect
def _lower_priority(**_) -> None:
    """Before the pool starts, so its threads and processes inherit it (settings.WORKER_NICENESS)."""
    from django.conf import settings

    niceness = settings.WORKER_NICENESS
    if niceness <= 0:
        return
    os.nice(niceness)
    # Linux's autogroup scheduling ranks sessions before niceness: a worker that leads a
    # session of its own (started by a supervisor, or with setsid) would still get as much CPU
    # as the web's session. Its session then gets the niceness too. A worker in the web's
    # session (bin/run) must not: that would slow the web down with it.
    autogroup = Path("/proc/self/autogroup")
    if os.getsid(0) == os.getpid() and autogroup.exists():
        with contextlib.suppress(OSError):
            autogroup.write_text(str(niceness))


# Every worker writes a heartbeat to Redis that /healthz and the editors' dashboard read.
from config.heartbeat import WorkerHeartbeat  # noqa: E402

app.steps["worker"].add(WorkerHeartbeat)
