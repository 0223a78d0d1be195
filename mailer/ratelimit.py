"""The provider's sending rate, shared by every worker through Redis.

A generic cell rate algorithm (GCRA, a token bucket kept as one timestamp): the key holds the
"theoretical arrival time" (TAT) of the next message. Reserving ``n`` messages moves the TAT
forward by ``n / rate`` seconds and tells the caller how long to wait before sending, so a
batch of 1,000 at 100 messages per second waits its ten seconds however many workers share the
limit. The script runs atomically in Redis, on Redis's clock, so workers on different machines
agree without locks. A burst of up to ``rate`` messages (one second's worth) goes at once.
"""

from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

from config import redis_state

KEY = "newsletter:ratelimit:provider"

# KEYS[1] = bucket; ARGV = messages, rate per second, burst (seconds), max wait (seconds).
# Returns {granted (0/1), wait seconds as a string}. A reservation that would have to wait
# longer than max wait is not made, so a task can give its worker back and come again later.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - now - burst
if wait < 0 then wait = 0 end
if wait > max_wait then
  return {0, tostring(wait)}
end
local new_tat = tat + n / rate
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now + 1) * 1000))
return {1, tostring(wait)}
"""


@dataclass(frozen=True)
class Reservation:
    granted: bool
    wait: float  # seconds to wait before sending (granted), or until a retry could succeed


@lru_cache(maxsize=4)
def _script(url: str):
    return redis_state.client().register_script(_RESERVE)


def reserve(messages: int, *, rate: float | None = None, max_wait: float = 30.0) -> Reservation:
    """Reserve sending capacity for ``messages`` messages at ``rate`` per second (default
    settings.PROVIDER_RATE_LIMIT; 0 or less means no limit: granted at once).

    Granted reservations are final (call it once per send attempt); a refused one (the wait
    would exceed ``max_wait``) reserves nothing.
    """
    rate = settings.PROVIDER_RATE_LIMIT if rate is None else rate
    if rate <= 0 or messages <= 0:
        return Reservation(True, 0.0)
    granted, wait = _script(settings.REDIS_URL)(keys=[KEY], args=[messages, rate, 1.0, max_wait])
    return Reservation(bool(int(granted)), float(wait))
