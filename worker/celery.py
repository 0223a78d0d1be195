"""The Celery application: broker, beat schedule and routing. Tasks live in each app's tasks.py."""

import os

from celery import Celery

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
}
app.conf.task_routes = {
    "subscribers.tasks.*": {"queue": "celery"},
    "mailer.tasks.*": {"queue": "celery"},
}

# Every worker writes a heartbeat to Redis that /healthz and the editors' dashboard read.
from config.heartbeat import WorkerHeartbeat  # noqa: E402

app.steps["worker"].add(WorkerHeartbeat)
