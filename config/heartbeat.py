"""Worker heartbeats in Redis, read by the health check and the editors' dashboard.

Each Celery worker writes its hostname and the time into one sorted set every few seconds, from
the worker's own timer (the event loop that also consumes tasks), so a wedged or dead worker
stops writing. Reading costs one Redis call and never waits for a worker to answer, unlike
``celery inspect ping`` which blocks for its whole timeout when nobody is there.
"""

import contextlib
import time

import redis
from celery import bootsteps

KEY = "newsletter:worker-heartbeats"
INTERVAL = 5.0  # seconds between heartbeats
MAX_AGE = 30.0  # a worker not heard from for longer is taken for dead
_FORGET_AFTER = 24 * 3600.0

_clients: dict[str, redis.Redis] = {}


def client(url: str | None = None) -> redis.Redis:
    """A Redis client with short timeouts (health checks must not hang), one per URL."""
    if url is None:
        from django.conf import settings

        url = settings.REDIS_URL
    found = _clients.get(url)
    if found is None:
        found = _clients[url] = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
    return found


def beat(hostname: str, *, conn: redis.Redis | None = None, now: float | None = None) -> None:
    """Record that ``hostname`` is alive now; forget workers gone for a day."""
    now = time.time() if now is None else now
    conn = conn or client()
    pipe = conn.pipeline(transaction=False)
    pipe.zadd(KEY, {hostname: now})
    pipe.zremrangebyscore(KEY, "-inf", now - _FORGET_AFTER)
    pipe.execute()


def forget(hostname: str, *, conn: redis.Redis | None = None) -> None:
    """A worker shutting down cleanly leaves at once rather than after ``MAX_AGE``."""
    (conn or client()).zrem(KEY, hostname)


def live_workers(*, conn: redis.Redis | None = None, now: float | None = None) -> dict[str, float]:
    """Hostnames heard from within ``MAX_AGE`` seconds, with the seconds since each was heard."""
    now = time.time() if now is None else now
    rows = (conn or client()).zrangebyscore(KEY, now - MAX_AGE, "+inf", withscores=True)
    return {name.decode(): round(max(0.0, now - score), 1) for name, score in rows}


class WorkerHeartbeat(bootsteps.StartStopStep):
    """Worker bootstep: a heartbeat at start, every ``INTERVAL`` seconds, and a goodbye at stop.
    Registered in ``worker/celery.py`` with ``app.steps["worker"].add(WorkerHeartbeat)``."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.tref = None

    def _beat(self, hostname: str) -> None:
        # Redis being away is what the health check reports; the worker carries on.
        with contextlib.suppress(redis.RedisError):
            beat(hostname)

    def start(self, worker) -> None:
        self._beat(worker.hostname)
        self.tref = worker.timer.call_repeatedly(INTERVAL, self._beat, (worker.hostname,), priority=10)

    def stop(self, worker) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
        with contextlib.suppress(redis.RedisError):
            forget(worker.hostname)
