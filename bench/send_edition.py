"""Edition send, end to end: N subscribers across five topic segments, one edition sent by real
Celery worker processes (first one, then two) on Redis and the configured database, through
Anymail's real Mailgun backend to the local provider over HTTP.

    bin/bench send --recipients 100000 [--workers 1,2] [--naive-sample 500]

Prints, per worker count: recipients per second from "start" (the start_edition task queued)
to "last delivery recorded" (the latest Delivery.sent_at), provider calls, MJML compilations,
database queries per 1,000 recipients, and peak memory of each worker process. Then, in the
same run: the naive baseline (one Anymail call and one MJML compilation per recipient, on a
sample) and the limit (Anymail alone building the batch payloads for the same recipients, no
database and no network, in one process), each as a ratio to the end-to-end rate.

The database must be a scratch one (its name contains "bench" or "test"): the benchmark
empties the subscriber and mailer tables it fills.
"""

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    Workers,
    figure,
    heading,
    local_provider,
    require_own_redis,
    require_scratch_database,
    service_env,
    setup_django,
)
from bench.worker import PREFIX, READY


@dataclass
class SendRun:
    workers: int
    recipients: int
    sent: int
    seconds: float
    calls: int
    messages: int
    duplicates: int
    compilations: int
    segments: int
    queries: int
    peaks_mb: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    @property
    def calls_per_1000(self) -> float:
        return self.calls / max(self.recipients, 1) * 1000

    @property
    def queries_per_1000(self) -> float:
        return self.queries / max(self.recipients, 1) * 1000


class Counters:
    """The cost counters bench.worker writes to Redis."""

    def __init__(self):
        import redis
        from django.conf import settings

        self.redis = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)

    def clear(self) -> None:
        keys = list(self.redis.scan_iter(f"{PREFIX}:*"))
        if keys:
            self.redis.delete(*keys)

    def ready_pids(self) -> set[str]:
        return self.redis.smembers(READY)

    def per_process(self) -> list[dict[str, int]]:
        rows = []
        for key in self.redis.scan_iter(f"{PREFIX}:*"):
            if key != READY:
                rows.append({k: int(v) for k, v in self.redis.hgetall(key).items()})
        return rows


def wait_for_edition(digest_id: int, timeout: float):
    from mailer.models import Digest

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Digest.objects.filter(pk=digest_id).values_list("status", flat=True).first()
        if status == Digest.Status.SENT:
            return
        if status in (Digest.Status.FAILED, Digest.Status.PAUSED, Digest.Status.CANCELLED):
            raise RuntimeError(f"the edition stopped as {status}")
        time.sleep(0.25)
    from mailer.selectors import edition_figures

    raise RuntimeError(f"the edition did not finish in {timeout:.0f}s: {edition_figures(digest_id)}")


def send_once(*, workers: int, recipients: int, provider, args, segments: int) -> SendRun:
    """One edition to every subscriber through ``workers`` fresh worker processes."""
    from django.db.models import Max
    from django.utils import timezone

    from bench import data
    from mailer.models import Delivery, RenderedSegment
    from mailer.sending.queue import START_EDITION
    from worker import app

    data.clear_editions()
    provider.reset()
    counters = Counters()
    counters.clear()
    app.control.purge()
    with Workers(workers, env=service_env(provider), pool=args.pool, concurrency=args.concurrency) as running:
        running.wait_ready(counters)
        digest = data.edition(articles=args.articles)
        start = timezone.now()
        app.send_task(START_EDITION, args=[digest.pk])
        wait_for_edition(digest.pk, timeout=args.timeout)
        # The last report of each process is written after its last task; give it a moment.
        time.sleep(0.5)
    ledger = Delivery.objects.filter(digest=digest)
    last = ledger.aggregate(last=Max("sent_at"))["last"]
    sent = ledger.filter(status=Delivery.Status.SENT).count()
    stats = provider.stats()
    rows = counters.per_process()
    return SendRun(
        workers=workers,
        recipients=recipients,
        sent=sent,
        seconds=(last - start).total_seconds() if last else 0.0,
        calls=stats["calls"],
        messages=stats["messages"],
        duplicates=stats["duplicates"],
        compilations=sum(r.get("compilations", 0) for r in rows),
        segments=RenderedSegment.objects.filter(digest=digest).count() or segments,
        queries=sum(r.get("queries", 0) for r in rows),
        peaks_mb=sorted((r.get("peak_kb", 0) / 1024 for r in rows), reverse=True),
    )


def print_run(run: SendRun) -> None:
    heading(f"end to end, {run.workers} worker process{'es' if run.workers > 1 else ''}")
    figure(
        "delivered",
        f"{run.sent:,} of {run.recipients:,} (provider: {run.messages:,} messages, "
        f"{run.duplicates} duplicates)",
    )
    figure("time", f"{run.seconds:.2f} s from start to last delivery recorded")
    figure("rate", f"{run.rate:,.0f} recipients/s")
    figure("provider calls", f"{run.calls} = {run.calls_per_1000:.1f} per 1,000 recipients")
    figure("MJML compilations", f"{run.compilations} (segments: {run.segments})")
    figure("database queries", f"{run.queries:,} = {run.queries_per_1000:.1f} per 1,000 recipients")
    figure("worker peak memory", ", ".join(f"{mb:.0f} MB" for mb in run.peaks_mb) or "n/a")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--workers", default="1,2", help="worker process counts to run, e.g. 1,2 or 2")
    parser.add_argument("--pool", default="threads", help="Celery pool of each worker process")
    parser.add_argument("--concurrency", type=int, default=2, help="tasks at once per worker process")
    parser.add_argument("--articles", type=int, default=10)
    parser.add_argument("--naive-sample", type=int, default=500, help="recipients sent the naive way")
    parser.add_argument(
        "--limit-sample", type=int, default=200_000, help="recipients whose payloads the limit builds"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds one edition may take")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",") if n.strip()]

    setup_django()
    from bench import baseline, data

    database = require_scratch_database()
    require_own_redis()
    print(f"database: {database}")
    from django.conf import settings

    print(
        f"redis: {settings.REDIS_URL}  batch size: {settings.PROVIDER_BATCH_SIZE}  pool: {args.pool} "
        f"x{args.concurrency} per worker process"
    )
    dataset = data.subscribers(args.recipients)
    if dataset.seconds:
        figure(
            "data",
            f"{args.recipients:,} subscribers in {len(dataset.segment_keys)} segments generated "
            f"in {dataset.seconds:.1f} s",
        )
    else:
        figure("data", f"{args.recipients:,} subscribers in {len(dataset.segment_keys)} segments (reused)")

    runs: list[SendRun] = []
    with local_provider() as provider:
        for workers in counts:
            run = send_once(
                workers=workers,
                recipients=args.recipients,
                provider=provider,
                args=args,
                segments=len(dataset.segment_keys),
            )
            print_run(run)
            runs.append(run)
        best = max(runs, key=lambda r: r.rate)

        heading("naive baseline: one Anymail call and one MJML compilation per recipient, one process")
        calls_before = provider.stats()["calls"]
        naive = baseline.naive_send(provider, sample=min(args.naive_sample, args.recipients))
        naive_calls = provider.stats()["calls"] - calls_before
        figure(
            "naive",
            f"{naive.recipients:,} recipients in {naive.seconds:.2f} s = {naive.rate:,.1f} recipients/s",
        )
        figure(
            "naive calls",
            f"{naive_calls:,} = {naive_calls / max(naive.recipients, 1) * 1000:,.0f} per 1,000 recipients",
        )
        naive_ratio = best.rate / naive.rate if naive.rate else 0.0
        figure("end to end / naive", f"{naive_ratio:,.1f}x")

    heading("limit: Anymail alone building the batch payloads, no database, no network, one process")
    limit = baseline.payload_limit(sample=min(args.limit_sample, args.recipients))
    figure(
        "limit",
        f"{limit.recipients:,} recipients in {limit.seconds:.2f} s = {limit.rate:,.0f} recipients/s "
        f"(merge data and message {limit.message_seconds:.2f} s, payload and encoding "
        f"{limit.payload_seconds:.2f} s)",
    )
    fraction = best.rate / limit.rate if limit.rate else 0.0
    figure("end to end / limit", f"{fraction:.2f}")

    ok = all(r.sent == r.recipients and r.duplicates == 0 for r in runs)
    print(
        f"\nsummary: send recipients={args.recipients} "
        + " ".join(f"rate_{r.workers}w={r.rate:.0f}/s" for r in runs)
        + f" naive_ratio={naive_ratio:.1f} limit_fraction={fraction:.2f}"
        + f" compilations={best.compilations} segments={best.segments}"
        + f" calls_per_1000={best.calls_per_1000:.1f} naive_calls_per_1000={naive_calls / max(naive.recipients, 1) * 1000:.0f}"
        + f" queries_per_1000={best.queries_per_1000:.1f}"
        + f" peak_mb={max((max(r.peaks_mb, default=0) for r in runs), default=0):.0f}"
        + f" delivered={min(r.sent for r in runs)}/{args.recipients}"
        + f" duplicates={sum(r.duplicates for r in runs)}",
        flush=True,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
