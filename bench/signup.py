"""Sign-ups: the JSON sign-up endpoint under gunicorn on loopback, driven by a load generator for
a bounded time (wrk when installed, otherwise a Python one; the output names which): requests
per second and p50/p99 latency, with no edition going out, and again while real workers send an
edition to --edition-recipients subscribers.

    bin/bench signup [--seconds 10] [--connections 16] [--edition-recipients 100000]

Every request is a real sign-up (a new pending subscriber, a consent record and a queued
confirmation email), from its own client address: gunicorn trusts one proxy, as production
behind its TLS proxy does, so the per-address rate limit is counted but never reached. The
sign-ups are removed afterwards.
"""

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

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


def print_load(title: str, load, outcome: str) -> None:
    heading(title)
    figure("load generator", load.tool)
    figure("requests", f"{load.requests:,} in {load.seconds:.1f} s = {load.rate:,.0f} sign-ups/s")
    figure("latency", f"p50 {load.p50_ms:.1f} ms, p99 {load.p99_ms:.1f} ms, max {load.max_ms:.1f} ms")
    figure("errors", f"{load.errors} (connection errors, timeouts and 4xx/5xx answers)")
    figure("accepted", outcome)


def settled_count(queryset, *, quiet_seconds: float = 2, timeout: float = 120) -> int:
    """The count once it has stopped growing: sign-ups are written by the worker, not the request."""
    deadline = time.monotonic() + timeout
    count, since = queryset.count(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet_seconds:
        time.sleep(0.25)
        now = queryset.count()
        if now != count:
            count, since = now, time.monotonic()
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--edition-recipients", type=int, default=100_000)
    parser.add_argument("--send-workers", type=int, default=2)
    parser.add_argument("--python-loadgen", action="store_true", help="use the Python load generator")
    args = parser.parse_args(argv)
    setup_django()
    from django.conf import settings

    from bench import data, loadgen
    from bench.common import database_url
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
    results = []
    with local_provider() as provider:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=database_url(),
            REDIS_URL=settings.REDIS_URL,
            LOCAL_PROVIDER_URL=provider.url,
            MAILGUN_API_URL=provider.api_url,
            TRUSTED_PROXY_COUNT="1",
            LOG_LEVEL="WARNING",
        )
        web = Gunicorn(env, workers=args.web_workers, threads=args.threads)
        try:
            web.wait_ready()
            signups = Subscriber.objects.filter(email__endswith=f"@{loadgen.EMAIL_DOMAIN}")
            load = loadgen.run(
                web.url,
                seconds=args.seconds,
                connections=args.connections,
                run_id="i",
                force_python=args.python_loadgen,
            )
            # No worker runs yet: every accepted sign-up is a message waiting in the queue.
            queued = redis.Redis.from_url(settings.CELERY_BROKER_URL).llen("celery")
            print_load("sign-ups, nothing being sent", load, f"{queued:,} sign-ups queued for the worker")
            results.append(load)
            # The confirmations queued by these sign-ups are not part of the edition's work.
            app.control.purge()

            counters = Counters()
            counters.clear()
            with Workers(args.send_workers, env=env, pool="threads", concurrency=2) as running:
                running.wait_ready(counters)
                digest = data.edition()
                app.send_task(START_EDITION, args=[digest.pk])
                while not Delivery.objects.filter(digest=digest, status=Delivery.Status.SENT).exists():
                    time.sleep(0.1)
                before = Delivery.objects.filter(digest=digest, status=Delivery.Status.SENT).count()
                load = loadgen.run(
                    web.url,
                    seconds=args.seconds,
                    connections=args.connections,
                    run_id="s",
                    force_python=args.python_loadgen,
                )
                after = Delivery.objects.filter(digest=digest, status=Delivery.Status.SENT).count()
                status = Digest.objects.get(pk=digest.pk).status
                stored = settled_count(signups)
            print_load(
                f"sign-ups while {args.send_workers} workers send an edition to "
                f"{dataset.subscribers:,} subscribers",
                load,
                f"{stored:,} pending subscribers stored by the workers",
            )
            figure(
                "sent meanwhile",
                f"{after - before:,} recipients during the load (edition {status} at the end)",
            )
            results.append(load)
            counters.redis.delete(*counters.redis.scan_iter(f"{PREFIX}:*"))
        finally:
            web.stop()
            app.control.purge()
            remove_signups()
            data.clear_editions()
    idle, busy = results
    print(
        f"\nsummary: signup tool={idle.tool.split()[0]} rate={idle.rate:.0f}/s p50={idle.p50_ms:.1f}ms "
        f"p99={idle.p99_ms:.1f}ms errors={idle.errors} sending_rate={busy.rate:.0f}/s "
        f"sending_p50={busy.p50_ms:.1f}ms sending_p99={busy.p99_ms:.1f}ms sending_errors={busy.errors}",
        flush=True,
    )
    return 0 if idle.errors == 0 and busy.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
