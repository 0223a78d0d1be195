"""Load held: sign-ups sustained while an edition is being sent, against gunicorn on loopback
running the production settings (security middleware, CSP, HSTS: what the publisher deploys),
for a bounded time. Then, one request at a time, the sign-up's answer time for new addresses
and for addresses already subscribed, side by side (a stranger must not tell them apart).

    python bench/load_signups.py [--seconds 20] [--connections 16] [--edition-recipients 50000]

Needs DATABASE_URL naming a scratch database ("bench" or "test" in its name; PostgreSQL for
real figures) and REDIS_URL; bin/bench sets both up the same way for its benchmarks. Uses wrk
when installed (apt-get install wrk), otherwise the Python load generator in bench/loadgen.py.
Prints req/s, p50/p99, errors and a ``summary:`` line; exits 1 when any request failed.
"""

import argparse
import http.client
import json
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Workers, figure, heading, local_provider, require_scratch_database, setup_django

TIMING_SAMPLES = 200


def answer_times(url: str, emails: list[tuple[str, str]]) -> dict[str, list[float]]:
    """One request at a time on one keep-alive connection: (kind, email) in the given order."""
    host, _, port = url.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    times: dict[str, list[float]] = {}
    for n, (kind, email) in enumerate(emails):
        body = json.dumps({"email": email, "frequency": "daily"})
        headers = {"Content-Type": "application/json", "X-Forwarded-For": f"10.250.{n // 250}.{n % 250 + 1}"}
        started = time.perf_counter()
        conn.request("POST", "/api/subscribe", body, headers)
        response = conn.getresponse()
        response.read()
        times.setdefault(kind, []).append((time.perf_counter() - started) * 1000)
        if response.status != 202:
            raise RuntimeError(f"sign-up answered {response.status} for a {kind} address")
    conn.close()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--edition-recipients", type=int, default=50_000)
    parser.add_argument("--send-workers", type=int, default=1)
    parser.add_argument("--python-loadgen", action="store_true")
    args = parser.parse_args(argv)
    setup_django()
    from django.utils import timezone

    from bench import data, loadgen
    from bench.common import service_env
    from bench.send_edition import Counters
    from bench.signup import Gunicorn, production_env, remove_signups, settled_count
    from mailer.models import Delivery, Digest
    from mailer.sending.queue import START_EDITION
    from subscribers.models import Subscriber
    from worker import app

    print(f"database: {require_scratch_database()}")
    dataset = data.subscribers(args.edition_recipients)
    remove_signups()
    data.clear_editions()
    app.control.purge()
    with local_provider() as provider:
        env = production_env(service_env(provider))
        web = Gunicorn(env, workers=args.web_workers, threads=args.threads)
        try:
            web.wait_ready()
            counters = Counters()
            counters.clear()
            with Workers(args.send_workers, env=env, pool="threads", concurrency=2) as running:
                running.wait_ready(counters)
                digest = data.edition()
                app.send_task(START_EDITION, args=[digest.pk])
                sent = Delivery.objects.filter(digest=digest, status=Delivery.Status.SENT)
                while not sent.exists():
                    time.sleep(0.1)
                before = sent.count()
                load = loadgen.run(
                    web.url,
                    seconds=args.seconds,
                    connections=args.connections,
                    run_id="r",
                    force_python=args.python_loadgen,
                )
                after = sent.count()
                status = Digest.objects.get(pk=digest.pk).status
                # Requests only queue sign-ups; the running worker stores them.
                signups = settled_count(Subscriber.objects.filter(email__endswith=f"@{loadgen.EMAIL_DOMAIN}"))
            heading(
                f"sign-ups while an edition goes to {dataset.subscribers:,} subscribers (production settings)"
            )
            figure("load generator", load.tool)
            figure("requests", f"{load.requests:,} in {load.seconds:.1f} s = {load.rate:,.0f} sign-ups/s")
            figure("latency", f"p50 {load.p50_ms:.1f} ms, p99 {load.p99_ms:.1f} ms, max {load.max_ms:.1f} ms")
            figure("errors", f"{load.errors} ({100 * load.errors / max(load.requests, 1):.2f}%)")
            figure("stored", f"{signups:,} pending subscribers (written by the worker)")
            figure(
                "sent meanwhile",
                f"{after - before:,} recipients during the load (edition {status} at the end)",
            )

            # Known addresses: active subscribers; new ones: never seen. Interleaved, so drift in
            # the machine's load falls on both alike.
            known = [f"known-{n}@{loadgen.EMAIL_DOMAIN}" for n in range(TIMING_SAMPLES)]
            Subscriber.objects.bulk_create(
                [
                    Subscriber(email=e, status=Subscriber.Status.ACTIVE, confirmed_at=timezone.now())
                    for e in known
                ]
            )
            order = [
                x
                for n in range(TIMING_SAMPLES)
                for x in (("known", known[n]), ("new", f"new-{n}@{loadgen.EMAIL_DOMAIN}"))
            ]
            times = answer_times(web.url, order)
            heading("answer time by address, one request at a time")
            for kind in ("new", "known"):
                values = sorted(times[kind])
                p90 = values[int(len(values) * 0.9)]
                figure(
                    kind, f"p50 {statistics.median(values):.2f} ms, p90 {p90:.2f} ms ({len(values)} requests)"
                )
        finally:
            web.stop()
            app.control.purge()
            remove_signups()
            data.clear_editions()
    new_p50, known_p50 = statistics.median(times["new"]), statistics.median(times["known"])
    print(
        f"\nsummary: load_signups tool={load.tool.split()[0]} rate={load.rate:.0f}/s p50={load.p50_ms:.1f}ms "
        f"p99={load.p99_ms:.1f}ms errors={load.errors} requests={load.requests} sent_meanwhile={after - before} "
        f"new_p50={new_p50:.2f}ms known_p50={known_p50:.2f}ms",
        flush=True,
    )
    return 0 if load.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
