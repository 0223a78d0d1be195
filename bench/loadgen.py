"""Load generators for the sign-up benchmark: wrk when it is installed, otherwise a small asyncio
one (HTTP/1.1 keep-alive on raw sockets). Each request is a new reader at a new address, from a
new client address in X-Forwarded-For (the server trusts one proxy), so the per-address rate
limits are exercised but never hit. Both report the same figures."""

import asyncio
import itertools
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

EMAIL_DOMAIN = "signup.bench.example.org"
PATH = "/api/subscribe"

# Thread n of wrk signs up w<run>-<n>-<k>@..., from 10.<n>.x.y.
WRK_SCRIPT = """
local threads, run = {}, "%(run)s"
local tid = 0
function setup(thread)
  thread:set("id", tid)
  table.insert(threads, thread)
  tid = tid + 1
end
function init(args)
  counter = 0
end
request = function()
  counter = counter + 1
  local email = string.format("w%%s-%%d-%%d@%(domain)s", run, id, counter)
  local ip = string.format("10.%%d.%%d.%%d", id %% 250, math.floor(counter / 250) %% 250, counter %% 250 + 1)
  local body = '{"email": "' .. email .. '", "name": "Bench Reader", "frequency": "daily"}'
  return wrk.format("POST", "%(path)s", {["Content-Type"] = "application/json", ["X-Forwarded-For"] = ip}, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"p50_us\\": %%d, \\"p99_us\\": %%d, \\"max_us\\": %%d, "
    .. "\\"errors\\": %%d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


@dataclass(frozen=True)
class Load:
    tool: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # connection errors, timeouts and answers other than 2xx/3xx
    # Open loop: how late the generator itself wrote requests (p99), part of their latency.
    late_p99_ms: float | None = None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run(url: str, *, seconds: float, connections: int, run_id: str, force_python: bool = False) -> Load:
    if shutil.which("wrk") and not force_python:
        return _wrk(url, seconds=seconds, connections=connections, run_id=run_id)
    why = "chosen with --python-loadgen" if force_python else "wrk not installed"
    return asyncio.run(_python(url, seconds=seconds, connections=connections, run_id=run_id, why=why))


def _wrk(url: str, *, seconds: float, connections: int, run_id: str) -> Load:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"run": run_id, "domain": EMAIL_DOMAIN, "path": PATH})
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t",
                "2",
                "-c",
                str(connections),
                "-d",
                f"{seconds:.0f}s",
                "--timeout",
                "5s",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    finally:
        Path(script.name).unlink()
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    data = json.loads(line.removeprefix("RESULT "))
    return Load(
        tool="wrk",
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        errors=data["errors"],
    )


def at_rate(url: str, *, rate: float, seconds: float, run_id: str, connections: int = 64) -> Load:
    """Open loop: offer ``rate`` sign-ups per second for ``seconds``, whatever the server does,
    and time each from when it was due (so a server that falls behind shows in the latency
    instead of slowing the load down). Needs no wrk: the Python generator does it."""
    return asyncio.run(
        _python(
            url,
            seconds=seconds,
            connections=connections,
            run_id=run_id,
            why=f"open loop at {rate:,.0f}/s",
            rate=rate,
        )
    )


def _request(host: str, run_id: str, n: int, k: int) -> bytes:
    body = json.dumps(
        {"email": f"p{run_id}-{n}-{k}@{EMAIL_DOMAIN}", "name": "Bench Reader", "frequency": "daily"}
    ).encode()
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"X-Forwarded-For: 10.{n % 250}.{k // 250 % 250}.{k % 250 + 1}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


async def _python(
    url: str, *, seconds: float, connections: int, run_id: str, why: str, rate: float | None = None
) -> Load:
    """``connections`` keep-alive connections. Closed loop (``rate`` None): each sends its next
    request when the last is answered. Open loop: request i is due at start + i / rate, sent by
    whichever connection is free, and timed from when it was due."""
    host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
    latencies: list[float] = []
    lateness: list[float] = []
    errors = 0
    start = time.perf_counter()
    deadline = start + seconds
    due_slots = itertools.count()

    async def client(n: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port or 80))
        k = 0
        try:
            while True:
                if rate is None:
                    due = time.perf_counter()
                else:
                    due = start + next(due_slots) / rate
                    if due - time.perf_counter() > 0:
                        await asyncio.sleep(due - time.perf_counter())
                if due >= deadline:
                    break
                k += 1
                lateness.append(time.perf_counter() - due)
                writer.write(_request(host, run_id, n, k))
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - due)
                if not status_line.split(b" ")[1].startswith((b"2", b"3")):
                    errors += 1
        except (ConnectionError, asyncio.IncompleteReadError, IndexError):
            errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(client(n) for n in range(connections)))
    took = time.perf_counter() - start
    ordered = sorted(latencies) or [0.0]
    return Load(
        tool=f"python (asyncio; {why})",
        requests=len(latencies),
        seconds=took,
        p50_ms=statistics.median(ordered) * 1000,
        p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        max_ms=ordered[-1] * 1000,
        errors=errors,
        late_p99_ms=_p99(lateness) * 1000 if rate is not None else None,
    )


def _p99(values: list[float]) -> float:
    ordered = sorted(values) or [0.0]
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
