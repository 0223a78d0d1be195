"""Sign-up requests only put the sign-up in the inbox (``subscribers.inbox``, a real Redis
list); tests that look at what a sign-up stored drain it here, as the worker's
``process_signups`` would, in this process and inside the test's transaction (flows that need
a worker process use the ``celery_worker`` fixture instead)."""

import base64
import json

import redis
from django.conf import settings

from subscribers import inbox, services

QUEUE = "celery"


def queued_tasks() -> list[tuple[str, list, dict]]:
    """The tasks waiting in the real broker queue, oldest first: (name, args, kwargs)."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    out = []
    for raw in reversed(broker.lrange(QUEUE, 0, -1)):  # kombu LPUSHes and BRPOPs
        message = json.loads(raw)
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        out.append((message["headers"]["task"], args, kwargs))
    return out


def queued_signups() -> list[dict]:
    """The sign-up messages waiting in the inbox, oldest first."""
    return inbox.peek()


def run_queued_signups() -> int:
    """Store every sign-up waiting in the inbox, oldest first, as the worker's drain does
    (errors are raised). Returns how many were taken off the inbox."""
    return inbox.drain(services.process_signups) or 0
