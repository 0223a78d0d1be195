"""Sign-up requests only queue a ``process_signup`` task; tests that look at what a sign-up
stored take those messages off the real broker queue and run them, as a worker would, in this
process and inside the test's transaction (flows that need a worker process use the
``celery_worker`` fixture instead)."""

import base64
import json

import redis
from django.conf import settings

from subscribers.tasks import process_signup

QUEUE = "celery"


def queued_tasks() -> list[tuple[str, list, dict]]:
    """The tasks waiting in the real broker queue, oldest first: (name, args, kwargs)."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    out = []
    for raw in reversed(broker.lrange(QUEUE, 0, -1)):  # kombu LPUSHes and BRPOPs
        name, args, kwargs = _decode(raw)
        out.append((name, args, kwargs))
    return out


def _decode(raw: bytes) -> tuple[str, list, dict]:
    message = json.loads(raw)
    args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    return message["headers"]["task"], args, kwargs


def run_queued_signups() -> int:
    """Take every queued ``process_signup`` message off the broker, oldest first, and run the
    task with the message's own arguments (errors are raised). Other tasks stay queued.
    Returns how many ran."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    ran = 0
    for raw in reversed(broker.lrange(QUEUE, 0, -1)):
        name, args, kwargs = _decode(raw)
        if name != process_signup.name:
            continue
        broker.lrem(QUEUE, 1, raw)
        process_signup.apply(args, kwargs, throw=True)
        ran += 1
    return ran
