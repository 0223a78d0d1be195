"""Shared by the fault tests (tests/test_faults_*.py): waiting for an edition, counting what the
local provider received, and a throwaway Redis server. No tests here.

Every fault test ends with the same three numbers, printed for the README's Reliability table
(run with ``-s`` to see them): expected copies, copies the provider recorded, duplicates.
"""

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from mailer import selectors
from mailer.models import Batch, Digest


def worker_env(local_provider, **overrides: str) -> dict[str, str]:
    """Environment of a worker process sending to the local provider, with quick retries; each
    test adds what its fault needs (batch size, visibility timeout, batch lease...)."""
    from django.conf import settings

    return {
        "MAILGUN_API_URL": local_provider.api_url,
        "PROVIDER_HONOURS_IDEMPOTENCY_KEY": "true",
        "DELIVERY_RETRY_BACKOFF_MS": "100",
        "LOG_LEVEL": "WARNING",
        "SITE_URL": settings.SITE_URL,
        **overrides,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_sent(digest: Digest, timeout: float) -> Digest:
    """Poll the edition until it is sent; fail with its figures when it is not in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        digest.refresh_from_db()
        if digest.status == Digest.Status.SENT:
            return digest
        if digest.status in (Digest.Status.SKIPPED, Digest.Status.CANCELLED):
            break
        time.sleep(0.2)
    batches = {
        status: Batch.objects.filter(digest=digest, status=status).count() for status in Batch.Status.values
    }
    raise AssertionError(
        f"edition still {digest.status} ({digest.status_note}) after {timeout}s: "
        f"{selectors.edition_figures(digest.pk)} batches={batches}"
    )


def assert_each_once(local_provider, fault: str, expected: int) -> dict:
    """Every expected (reader, edition) got exactly one copy at the provider; prints the counts."""
    stats = local_provider.stats()
    messages = local_provider.messages(limit=expected * 2 + 10)
    # One copy per reader and edition (editions differ by subject).
    received = [(m["recipient"], m["subject"]) for m in messages]
    print(
        f"\nFAULT {fault}: expected={expected} delivered={stats['messages']} "
        f"unique={len(set(received))} duplicates={stats['duplicates']} calls={stats['calls']} "
        f"refused_calls={stats.get('rejected_calls')}"
    )
    assert stats["duplicates"] == 0, stats
    assert stats["messages"] == expected, stats
    assert len(set(received)) == len(received) == expected
    return stats


def assert_figures_add_up(digest: Digest, *, total: int, sent: int) -> dict:
    figures = selectors.edition_figures(digest.pk)
    assert figures["total"] == figures["pending"] + figures["sent"] + figures["failed"] + figures["skipped"]
    assert (figures["total"], figures["sent"], figures["pending"], figures["failed"]) == (
        total,
        sent,
        0,
        0,
    ), figures
    digest.refresh_from_db()
    assert digest.total_recipients == total and digest.finished_at is not None
    return figures


# Production's Redis keeps an append-only file (docker-compose.yml); fsync each write here.
PERSISTENCE = ("--appendonly", "yes", "--appendfsync", "always", "--save", "")


def stable_free_port() -> int:
    """A free port below the kernel's ephemeral range: while our server is down for a restart,
    a client reconnecting to it can otherwise be handed that very port as its own source port
    (a TCP self-connect) and the server cannot bind it again."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:  # Linux; elsewhere assume IANA's
            low = int(f.read().split()[0])
    except OSError:
        low = 49152
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


class ThrowawayRedis:
    """A redis-server of our own on a free port (never the shared one), with the append-only
    file production uses, so a restart keeps what was queued."""

    def __init__(self):
        self.port = stable_free_port()
        self.dir = tempfile.mkdtemp(prefix="newsletter-faults-redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "ThrowawayRedis":
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed on PATH"
        where = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir]
        self.proc = subprocess.Popen(
            [binary, *where, *PERSISTENCE, "--logfile", os.path.join(self.dir, "redis.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    log = Path(self.dir, "redis.log")
                    text = log.read_text()[-2000:] if log.exists() else ""
                    raise RuntimeError(f"redis-server did not start: {text}") from None
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
