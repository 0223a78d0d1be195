"""The send benchmark itself, at its small size (10,000 recipients), as CI runs it: it must print
every figure and deliver each recipient exactly once. No timing assertions: speed is what the
benchmark reports, not what the test checks."""

import os
import re
import subprocess
import sys

import pytest
from django.conf import settings

from mailer.models import Delivery, RenderedSegment
from subscribers.models import Subscriber
from tests.fixtures.worker import ROOT, database_url_for_subprocess

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

RECIPIENTS = 10_000


def run_bench(*args: str) -> str:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.test_worker",
        DATABASE_URL=database_url_for_subprocess(),
        REDIS_URL=settings.REDIS_URL,
    )
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}"
    return done.stdout


def test_send_benchmark_prints_its_figures_and_delivers_every_recipient_once():
    out = run_bench(
        "bench.send_edition",
        "--recipients",
        str(RECIPIENTS),
        "--workers",
        "1,2",
        "--naive-sample",
        "20",
        "--limit-sample",
        "2000",
    )

    for label in (
        "end to end, 1 worker process",
        "end to end, 2 worker processes",
        "naive baseline",
        "limit: Anymail alone",
    ):
        assert label in out
    assert (
        out.count(
            f"delivered: {RECIPIENTS:,} of {RECIPIENTS:,} (provider: {RECIPIENTS:,} messages, 0 duplicates)"
        )
        == 2
    )
    for figure in (
        r"rate: [\d,]+ recipients/s",
        r"provider calls: (\d+)",
        r"MJML compilations: 5 \(segments: 5\)",
        r"database queries: [\d,]+ = [\d.]+ per 1,000 recipients",
        r"worker peak memory: \d+ MB, \d+ MB",
        r"naive: 20 recipients in [\d.]+ s",
        r"end to end / naive: [\d,.]+x",
        r"limit: 2,000 recipients in [\d.]+ s",
        r"end to end / limit: [\d.]+",
    ):
        assert re.search(figure, out), f"{figure!r} missing from:\n{out}"
    # One provider call per batch of at most 1,000 of one segment: ten calls of 1,000 at most
    # fifteen with the segments' remainders; never one per recipient.
    calls = [int(n) for n in re.findall(r"provider calls: (\d+)", out)]
    assert all(10 <= n <= 15 for n in calls), calls
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("summary: send recipients=10000 ")
    assert f"delivered={RECIPIENTS}/{RECIPIENTS} duplicates=0" in summary

    # What the database holds after the last run: every subscriber recorded as sent, once.
    assert Subscriber.objects.filter(status=Subscriber.Status.ACTIVE).count() == RECIPIENTS
    sent = Delivery.objects.filter(status=Delivery.Status.SENT)
    assert sent.count() == RECIPIENTS
    assert sent.values("subscriber_id").distinct().count() == RECIPIENTS
    assert RenderedSegment.objects.exclude(article_count=0).count() >= 5
