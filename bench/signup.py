"""Sign-ups: the JSON sign-up endpoint under gunicorn on loopback with the production settings
(security middleware, CSP), the real workers running, for a bounded time. Each phase measures
twice: the latency at a fixed offered rate (open loop, each request timed from when it was due:
a server falling behind shows as latency, not as a slower load), then the capacity (wrk, or the
Python generator, closed loop: as many requests as the server answers). Once with nothing being
sent, once while the workers send an edition to --edition-recipients subscribers.

    bin/bench signup [--seconds 10] [--rate 500] [--connections 16] [--edition-recipients 300000]

Every request is a real sign-up (a new pending subscriber, a consent record and a confirmation
email through the local provider), from its own client address: gunicorn trusts one proxy, as
production behind its TLS proxy does, so the per-address rate limit is counted but never
reached. The workers store the sign-ups (at their lower CPU priority, WORKER_NICENESS); the
benchmark waits for every one and says how long that took. The sign-ups are removed afterwards.
"""

import argparse
import contextlib
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    Workers,
    figure,
    heading,
    local_provider,
    require_own_redis,
    require_scratch_database,
    setup_django,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    def __init__(self, env: dict[str, str], *, workers: int, threads: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                "--threads",
                str(threads),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 30) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                # Any answer will do (the sign-up endpoint answers GET with 405).
                requests.get(f"{self.url}/api/subscribe", timeout=5)
                return
            except requests.RequestException:  # not listening yet, or still importing
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def remove_signups() -> int:
    from django.db import connection

    from bench.loadgen import EMAIL_DOMAIN
    from subscribers.models import ConsentRecord, Subscriber

    pattern = f"%@{EMAIL_DOMAIN}"
    table = Subscriber._meta.db_table
    with connection.cursor() as cursor:
        for model in (ConsentRecord, Subscriber.topics.through):
            cursor.execute(
                f"DELETE FROM {model._meta.db_table} WHERE subscriber_id IN "
                f"(SELECT id FROM {table} WHERE email LIKE %s)",
                [pattern],
            )
        cursor.execute(f"DELETE FROM {table} WHERE email LIKE %s", [pattern])
        return cursor.rowcount


def settled_count(
    queryset, *, quiet_seconds: float = 2, timeout: float = 120, expected: int | None = None
) -> int:
    """The count once it has reached ``expected``, or stopped growing for ``quiet_seconds``:
    sign-ups are written by the worker, not the request."""
    deadline = time.monotonic() + timeout
    count, since = queryset.count(), time.monotonic()
    while (
        time.monotonic() < deadline
        and time.monotonic() - since < quiet_seconds
        and (expected is None or count < expected)
    ):
        time.sleep(0.25)
        now = queryset.count()
        if now != count:
            count, since = now, time.monotonic()
    return count


def settle_database() -> None:
    """After the set-up's deletions, do now the maintenance PostgreSQL would otherwise start in
    the middle of the first load (autovacuum of the subscriber tables, a checkpoint)."""
    from django.db import DatabaseError, connection

    from subscribers.models import ConsentRecord, Subscriber

    if connection.vendor != "postgresql":
        return
    tables = [m._meta.db_table for m in (Subscriber, ConsentRecord, Subscriber.topics.through)]
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {', '.join(tables)}")
        # A checkpoint needs a superuser (or pg_checkpoint); the vacuum is the most of it.
        with contextlib.suppress(DatabaseError):
            cursor.execute("CHECKPOINT")


def forget_rate_limits() -> None:
    """Each load's client addresses start with a clean slate: a run's addresses repeat those of
    the run before, whose per-address counts would otherwise still be in Redis for the hour."""
    from config.redis_state import client
    from subscribers.ratelimit import KEY_PREFIX

    keys = list(client().scan_iter(f"{KEY_PREFIX}:signup:*", count=10_000))
    if keys:
        client().delete(*keys)


def production_env(base: dict[str, str]) -> dict[str, str]:
    """The web's environment: the production settings as the publisher deploys them, behind
    one trusted proxy (so every request may come from its own client address)."""
    env = dict(base)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY=secrets.token_urlsafe(50),
        SITE_URL="https://newsletter.bench.example.org",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",  # loopback has no TLS proxy in front
        TRUSTED_PROXY_COUNT="1",
        LOG_LEVEL="WARNING",
    )
    return env


def print_load(name: str, load) -> None:
    figure(f"{name} tool", load.tool)
    figure(f"{name}", f"{load.requests:,} in {load.seconds:.1f} s = {load.rate:,.0f} sign-ups/s")
    figure(f"{name} latency", f"p50 {load.p50_ms:.1f} ms, p99 {load.p99_ms:.1f} ms, max {load.max_ms:.1f} ms")
    figure(f"{name} errors", f"{load.errors} (connection errors, timeouts and 4xx/5xx answers)")
    if load.late_p99_ms is not None:
        figure(f"{name} generator", f"p99 {load.late_p99_ms:.1f} ms late writing a request (included above)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10, help="length of each load")
    parser.add_argument("--rate", type=float, default=500, help="sign-ups per second offered (open loop)")
    parser.add_argument("--connections", type=int, default=16, help="connections of the capacity load")
    parser.add_argument("--web-workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--edition-recipients", type=int, default=300_000)
    parser.add_argument("--send-workers", type=int, default=2)
    parser.add_argument("--python-loadgen", action="store_true", help="capacity with the Python generator")
    args = parser.parse_args(argv)
    setup_django()

    from bench import data, loadgen
    from bench.common import service_env
    from bench.send_edition import Counters
    from bench.worker import PREFIX
    from mailer.models import Delivery, Digest
    from mailer.sending.queue import START_EDITION
    from subscribers.models import Subscriber
    from worker import app

    print(f"database: {require_scratch_database()}")
    require_own_redis()
    dataset = data.subscribers(args.edition_recipients)
    remove_signups()
    data.clear_editions()
    app.control.purge()
    settle_database()
    signups = Subscriber.objects.filter(email__endswith=f"@{loadgen.EMAIL_DOMAIN}")
    results: dict[str, object] = {}
    counters = Counters()
    counters.clear()

    def measure(phase: str) -> int:
        """The offered rate (a steady load, as readers arrive), then the capacity (a burst);
        returns the requests answered 2xx."""
        forget_rate_limits()
        at_rate = loadgen.at_rate(web.url, rate=args.rate, seconds=args.seconds, run_id=f"{phase}r")
        print_load(f"at {args.rate:,.0f}/s", at_rate)
        forget_rate_limits()
        capacity = loadgen.run(
            web.url,
            seconds=args.seconds,
            connections=args.connections,
            run_id=f"{phase}c",
            force_python=args.python_loadgen,
        )
        print_load("capacity", capacity)
        results[phase] = (capacity, at_rate)
        return sum(load.requests - load.errors for load in (capacity, at_rate))

    def stored(expected: int) -> None:
        started = time.monotonic()
        # While an edition goes out the workers may spend a while on its batches between drains.
        count = settled_count(signups, quiet_seconds=60, timeout=900, expected=expected)
        figure(
            "stored",
            f"{count:,} of {expected:,} sign-ups stored by the workers "
            f"({time.monotonic() - started:.0f} s after the load ended)",
        )

    with local_provider() as provider:
        env = service_env(provider)
        web = Gunicorn(production_env(env), workers=args.web_workers, threads=args.threads)
        try:
            web.wait_ready()
            with Workers(args.send_workers, env=env, pool="threads", concurrency=2) as running:
                running.wait_ready(counters)
                # A server that has just started answers its first requests slowly (each thread
                # connects to Redis, loads translations, compiles its URL patterns): warm it up.
                warm = loadgen.at_rate(web.url, rate=args.rate / 2, seconds=2, run_id="warm")
                heading(f"sign-ups, nothing being sent ({args.send_workers} workers storing them)")
                figure("warm-up", f"{warm.requests:,} sign-ups in 2 s before measuring, not counted")
                accepted = warm.requests - warm.errors + measure("idle")
                stored(accepted)

                digest = data.edition()
                app.send_task(START_EDITION, args=[digest.pk])
                sent = Delivery.objects.filter(digest=digest, status=Delivery.Status.SENT)
                while not sent.exists():
                    time.sleep(0.1)
                before = sent.count()
                heading(
                    f"sign-ups while {args.send_workers} workers send an edition to "
                    f"{dataset.subscribers:,} subscribers"
                )
                accepted += measure("sending")
                after = sent.count()
                status = Digest.objects.get(pk=digest.pk).status
                figure(
                    "sent meanwhile",
                    f"{after - before:,} recipients during the loads (edition {status} at their end)",
                )
                stored(accepted)
            leftover = list(counters.redis.scan_iter(f"{PREFIX}:*"))
            if leftover:
                counters.redis.delete(*leftover)
        finally:
            web.stop()
            app.control.purge()
            remove_signups()
            data.clear_editions()
    (idle_cap, idle_rate), (busy_cap, busy_rate) = results["idle"], results["sending"]
    errors = sum(load.errors for load in (idle_cap, idle_rate, busy_cap, busy_rate))
    print(
        f"\nsummary: signup capacity={idle_cap.rate:.0f}/s capacity_sending={busy_cap.rate:.0f}/s "
        f"offered={args.rate:.0f}/s p50={idle_rate.p50_ms:.1f}ms p99={idle_rate.p99_ms:.1f}ms "
        f"sending_p50={busy_rate.p50_ms:.1f}ms sending_p99={busy_rate.p99_ms:.1f}ms errors={errors}",
        flush=True,
    )
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
