"""Per-client sign-up limits, counted in Redis, and the client's address."""

import ipaddress
import time
from dataclasses import dataclass

from django.conf import settings

from config.redis_state import client

KEY_PREFIX = "newsletter:ratelimit"  # then scope, client, window: one counter per window


@dataclass
class RateLimited(Exception):
    """Too many attempts from one client; ``retry_after`` seconds until the window turns."""

    retry_after: int

    def __str__(self) -> str:
        return f"rate limited, retry after {self.retry_after}s"


def client_ip(request) -> str:
    """The client's address. Behind ``TRUSTED_PROXY_COUNT`` proxies, each of which appends the
    address it received from to X-Forwarded-For, the client is the N-th entry from the right;
    entries further left are whatever the client chose to send and are ignored."""
    remote = request.META.get("REMOTE_ADDR", "") or "0.0.0.0"  # noqa: S104 (an address, not a bind)
    trusted = settings.TRUSTED_PROXY_COUNT
    if trusted > 0:
        hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
        if len(hops) >= trusted:
            candidate = hops[-trusted]
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                pass
    return remote


def _client_key(ip: str) -> str:
    # One IPv6 host usually owns a whole /64, so counting single v6 addresses would limit nobody.
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64]
    if address.version == 6:
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def hit(scope: str, ip: str, *, limit: int, window: int) -> None:
    """Count one attempt of ``scope`` by ``ip`` in the current fixed window; raises
    ``RateLimited`` once more than ``limit`` attempts were made in it. Every attempt counts,
    including refused ones, so probing costs the same as succeeding. A window of 0 turns the
    limit off."""
    if window <= 0:
        return
    now = int(time.time())
    bucket = now // window
    key = f"{KEY_PREFIX}:{scope}:{_client_key(ip)}:{bucket}"
    # One round trip: create the window's counter with its expiry if it is new, then count.
    pipe = client().pipeline(transaction=False)
    pipe.set(key, 0, ex=window + 5, nx=True)
    pipe.incr(key)
    _, count = pipe.execute()
    if count > limit:
        raise RateLimited(retry_after=window - now % window)


def check_signup(request) -> None:
    """The per-IP sign-up limit (SIGNUP_RATE_LIMIT_PER_IP per SIGNUP_RATE_LIMIT_WINDOW)."""
    hit(
        "signup",
        client_ip(request),
        limit=settings.SIGNUP_RATE_LIMIT_PER_IP,
        window=settings.SIGNUP_RATE_LIMIT_WINDOW,
    )
