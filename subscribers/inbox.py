"""The sign-up inbox: a Redis list that sign-up requests append to and the worker drains in
batches (``process_signups``), one database transaction per batch.

A request costs one round trip (append, and raise the wake flag); only the request that finds
no drain pending queues the ``process_signups`` task, so a burst of sign-ups is a burst of
appends, not of Celery messages. Nothing is lost: a batch leaves the inbox only after it was
stored, so a worker that dies midway leaves it for the next drain (storing a sign-up twice is
harmless: ``services.subscribe``). Beat queues a drain every minute as well, for an inbox whose
drain was lost with its worker.
"""

import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import redis

from config.redis_state import client

log = logging.getLogger(__name__)

INBOX = "newsletter:signups:inbox"
WAKE = "newsletter:signups:wake"  # set while a drain is queued or running
LOCK = "newsletter:signups:drain"  # one drain at a time
WAKE_SECONDS = 30  # a wake flag whose drain never ran lets the next sign-up queue one after this
LOCK_SECONDS = 120  # renewed after every batch; a dead drain's lock ends after this
BATCH_SIZE = 200


def append(message: dict[str, Any]) -> bool:
    """Put one sign-up message in the inbox. Returns True when no drain was pending, so the
    caller must queue one."""
    pipe = client().pipeline(transaction=False)
    pipe.rpush(INBOX, json.dumps(message, separators=(",", ":")))
    pipe.set(WAKE, 1, nx=True, ex=WAKE_SECONDS)
    _, wake = pipe.execute()
    return bool(wake)


def waiting() -> int:
    """Sign-ups in the inbox, not yet stored."""
    return client().llen(INBOX)


def peek() -> list[dict[str, Any]]:
    """Every waiting sign-up message, oldest first."""
    return [json.loads(raw) for raw in client().lrange(INBOX, 0, -1)]


def drain(store: Callable[[list[dict[str, Any]]], None], *, batch_size: int = BATCH_SIZE) -> int | None:
    """Hand the waiting sign-ups to ``store``, ``batch_size`` at a time, oldest first, until
    the inbox is empty. A batch is removed only once ``store`` has returned; if it raises,
    the batch stays for the next drain and the error propagates. Returns how many were
    stored, or None when another drain held the lock throughout (that one stores them: a
    drain looks again after letting go)."""
    r = client()
    stored = None
    while True:
        lock = r.lock(LOCK, timeout=LOCK_SECONDS, blocking=False)
        if not lock.acquire():
            return stored
        stored = stored or 0
        try:
            while True:
                # Lowered before looking: a sign-up appended from here on queues another drain
                # or is seen by this one, so none waits for beat's minute.
                r.delete(WAKE)
                raw = r.lrange(INBOX, 0, batch_size - 1)
                if not raw:
                    break
                store([_decode(item) for item in raw])
                r.ltrim(INBOX, len(raw), -1)
                stored += len(raw)
                lock.reacquire()
        finally:
            with contextlib.suppress(redis.exceptions.LockNotOwnedError):  # expired mid-batch
                lock.release()
        # A drain queued while this one held the lock gave up; what it came for is here now.
        if not r.llen(INBOX):
            return stored


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        message = json.loads(raw)
    except ValueError:
        message = None
    if not isinstance(message, dict):
        log.error("sign-up inbox: dropped a message that is not a JSON object (%d bytes)", len(raw))
        return {}
    return message
