"""The Redis connection for the service's own shared state (sign-up rate limits, the sign-up
inbox, feed locks, the delivery engine's token bucket and outage counters): one client, so one
connection pool, per process and URL, with timeouts so that a Redis that hangs fails a call
instead of holding a request or a task."""

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def client() -> redis.Redis:
    """The client for ``settings.REDIS_URL``."""
    return _client(settings.REDIS_URL)
