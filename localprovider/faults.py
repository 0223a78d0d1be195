"""Fault injection: the ways a real provider fails, switched on through ``POST /api/faults``."""

import random
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field, fields

DEFAULT_STATUS_CODES = (500, 502, 503, 429)


class InvalidFaults(ValueError):
    """The fault settings sent are not understood (answered 400)."""


@dataclass
class Faults:
    error_rate: float = 0.0  # share of calls answered with one of status_codes
    status_codes: list[int] = field(default_factory=lambda: list(DEFAULT_STATUS_CODES))
    latency_ms: int = 0  # added to every messages call
    timeout_rate: float = 0.0  # share of calls held for hang_seconds (past the client's timeout)
    hang_seconds: float = 35.0
    timeout_accepts: bool = False  # record a hung call's messages before hanging
    outage: bool = False  # every call 503 until cleared (or until outage_seconds have passed)
    outage_seconds: float | None = None
    rate_limit_per_second: int = 0  # calls per second beyond which the answer is 429
    accept_then_fail_rate: float = 0.0  # record the messages, then answer 500
    seed: int | None = None

    @classmethod
    def parse(cls, data: object) -> "Faults":
        if not isinstance(data, dict):
            raise InvalidFaults("faults must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidFaults(f"unknown fault setting(s): {', '.join(unknown)}")
        faults = cls()
        for name in ("error_rate", "timeout_rate", "accept_then_fail_rate"):
            if name in data:
                value = _number(data, name)
                if not 0 <= value <= 1:
                    raise InvalidFaults(f"{name} must be between 0 and 1")
                setattr(faults, name, value)
        for name in ("latency_ms", "hang_seconds", "outage_seconds", "rate_limit_per_second"):
            if name in data and data[name] is not None:
                value = _number(data, name)
                if value < 0:
                    raise InvalidFaults(f"{name} must not be negative")
                setattr(
                    faults, name, int(value) if name in ("latency_ms", "rate_limit_per_second") else value
                )
        for name in ("outage", "timeout_accepts"):
            if name in data:
                if not isinstance(data[name], bool):
                    raise InvalidFaults(f"{name} must be true or false")
                setattr(faults, name, data[name])
        if "status_codes" in data:
            codes = data["status_codes"]
            if (
                not isinstance(codes, list)
                or not codes
                or not all(isinstance(c, int) and not isinstance(c, bool) and 400 <= c <= 599 for c in codes)
            ):
                raise InvalidFaults("status_codes must be a non-empty list of HTTP error codes (400-599)")
            faults.status_codes = codes
        if data.get("seed") is not None:
            if not isinstance(data["seed"], int) or isinstance(data["seed"], bool):
                raise InvalidFaults("seed must be an integer")
            faults.seed = data["seed"]
        if data.get("outage_seconds") is not None:
            faults.outage = True
        return faults

    def as_dict(self) -> dict:
        return asdict(self)


def _number(data: dict, name: str) -> float:
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidFaults(f"{name} must be a number")
    return float(value)


@dataclass(frozen=True)
class Decision:
    """What to do with one messages call."""

    status: int | None = None  # answer this error at once, recording nothing
    hang: float = 0.0  # hold the request this long, then answer 504
    record_before_hang: bool = False
    accept_then_fail: bool = False
    latency: float = 0.0


class FaultInjector:
    """The current faults and the state they need (seeded random, outage clock, rate window)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.set(Faults())

    def set(self, faults: Faults) -> None:
        with self._lock:
            self.faults = faults
            self._random = random.Random(faults.seed)
            self._outage_until = (
                time.monotonic() + faults.outage_seconds if faults.outage_seconds is not None else None
            )
            self._recent: deque[float] = deque()

    def decide(self) -> Decision:
        with self._lock:
            f = self.faults
            latency = f.latency_ms / 1000
            if f.outage:
                if self._outage_until is None or time.monotonic() < self._outage_until:
                    return Decision(status=503, latency=latency)
                f.outage = False
            if f.rate_limit_per_second:
                now = time.monotonic()
                while self._recent and self._recent[0] <= now - 1:
                    self._recent.popleft()
                if len(self._recent) >= f.rate_limit_per_second:
                    return Decision(status=429, latency=latency)
                self._recent.append(now)
            if f.error_rate and self._random.random() < f.error_rate:
                return Decision(status=self._random.choice(f.status_codes), latency=latency)
            if f.timeout_rate and self._random.random() < f.timeout_rate:
                return Decision(hang=f.hang_seconds, record_before_hang=f.timeout_accepts, latency=latency)
            if f.accept_then_fail_rate and self._random.random() < f.accept_then_fail_rate:
                return Decision(accept_then_fail=True, latency=latency)
            return Decision(latency=latency)
