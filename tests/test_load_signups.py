"""Load held: readers keep signing up while an edition is being sent. gunicorn on loopback with the
production settings and the test database, a real worker process sending an edition through the
local provider, and a time-bounded load of sign-ups (wrk when installed, otherwise the Python
load generator of bench/loadgen.py). Every answer must be an acceptance, every sign-up stored,
and the edition must still reach each reader exactly once.

The figures (requests per second, p50/p99) are printed for the CI log, never asserted: speed
belongs to bench/load_signups.py, which runs the same load longer and bigger.
"""

import os
import time

import pytest
import requests
from django.conf import settings
from django.db import connection

from bench import loadgen
from bench.signup import Gunicorn, production_env
from mailer.models import Delivery, Digest
from mailer.tasks.delivery import start_edition
from subscribers import inbox
from subscribers.models import ConsentRecord, Subscriber
from tests.fixtures.worker import database_url_for_subprocess
from tests.test_delivery_fanout import add_subscribers, make_edition
from tests.test_faults_support import wait_until_sent
from worker import app as celery_app

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

RECIPIENTS = 3000
LOAD_SECONDS = 6
CONNECTIONS = 8


def wait_until_stored(signups, *, at_least: int, timeout: float = 60) -> int:
    """The number of sign-ups stored once it has reached ``at_least`` and stopped growing: the
    request may store the reader itself or queue the work for the worker, so the count can still
    be rising after the last answer."""
    deadline = time.monotonic() + timeout
    last, steady_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = signups.count()
        if count != last:
            last, steady_since = count, time.monotonic()
        elif count >= at_least and time.monotonic() - steady_since > 1:
            return count
        time.sleep(0.2)
    return last


@pytest.fixture
def web_server(transactional_db):
    """gunicorn (2 processes x 4 threads, as bench/load_signups.py runs it) on a free loopback port,
    with the production settings on the test database and this test's Redis."""
    env = production_env(os.environ)
    env.update(DATABASE_URL=database_url_for_subprocess(), REDIS_URL=settings.REDIS_URL)
    web = Gunicorn(env, workers=2, threads=4)
    try:
        web.wait_ready()
        yield web
    finally:
        web.stop()


def test_signups_are_all_accepted_and_stored_while_an_edition_is_sent(
    worker_process, local_provider, web_server
):
    add_subscribers(RECIPIENTS)
    digest = make_edition()
    worker_process(
        concurrency=4,
        MAILGUN_API_URL=local_provider.api_url,
        PROVIDER_BATCH_SIZE="50",
        LOG_LEVEL="WARNING",
        SITE_URL=settings.SITE_URL,
    )
    start_edition.delay(digest.pk)
    sent = Delivery.objects.filter(digest=digest, status=Delivery.Status.SENT)
    deadline = time.monotonic() + 30
    while not sent.exists():
        assert time.monotonic() < deadline, "the worker sent nothing of the edition in 30 s"
        time.sleep(0.05)
    sent_before = sent.count()
    # The answer the endpoint documents, once, before the load generator counts 2xx/3xx alike.
    answer = requests.post(
        f"{web_server.url}/api/subscribe",
        json={"email": "first@reader.example.net", "frequency": "daily"},
        headers={"X-Forwarded-For": "192.0.2.1"},
        timeout=30,
    )
    assert (answer.status_code, answer.json()["ok"]) == (202, True)

    load = loadgen.run(web_server.url, seconds=LOAD_SECONDS, connections=CONNECTIONS, run_id="ci")

    sent_after = sent.count()
    status_after = Digest.objects.get(pk=digest.pk).status
    # A graceful stop lets the requests still in flight when the load ended finish first.
    web_server.stop()
    signups = Subscriber.objects.filter(email__endswith=f"@{loadgen.EMAIL_DOMAIN}")
    stored = wait_until_stored(signups, at_least=load.requests)
    print(
        f"\nLOAD sign-ups while sending {RECIPIENTS:,} recipients ({connection.vendor}, {load.tool}): "
        f"{load.requests:,} in {load.seconds:.1f} s = {load.rate:,.1f}/s, p50 {load.p50_ms:.0f} ms, "
        f"p99 {load.p99_ms:.0f} ms, max {load.max_ms:.0f} ms, errors {load.errors}; stored {stored:,}; "
        f"edition recipients sent during the load {sent_after - sent_before:,} "
        f"({sent_before:,} before, edition {status_after} at the end)"
    )

    # The premise: the edition was going out while the readers signed up.
    assert sent_before < RECIPIENTS and sent_after > sent_before
    # Error rate 0: no connection error, timeout or answer other than 2xx/3xx ...
    assert load.requests > 0 and load.errors == 0, load
    # ... and each answered request was a real sign-up: a new pending reader with a consent record
    # (requests cut off by the end of the load may have been stored without being counted).
    assert load.requests <= stored <= load.requests + CONNECTIONS
    assert signups.exclude(status=Subscriber.Status.PENDING).count() == 0
    assert ConsentRecord.objects.filter(subscriber__in=signups).count() == stored

    wait_until_sent(digest, timeout=60)
    messages = local_provider.messages(subject=digest.subject, limit=RECIPIENTS * 2)
    recipients = [m["recipient"] for m in messages]
    assert len(recipients) == len(set(recipients)) == RECIPIENTS
    assert set(recipients) == {f"reader{i}@example.org" for i in range(RECIPIENTS)}
    assert local_provider.stats()["duplicates"] == 0
    assert sent.count() == RECIPIENTS
    # The sign-ups' confirmations still queued are not this test's business: drop them rather than
    # have the worker send them while the test database is emptied.
    celery_app.control.purge()


def test_the_open_loop_generator_offers_its_rate_whatever_the_server_does(web_server):
    """bench/signup.py's latency figure: request i is due at start + i / rate, so a run offers
    exactly rate x seconds sign-ups; each one answered and in the inbox."""
    load = loadgen.at_rate(web_server.url, rate=40, seconds=2, run_id="open", connections=4)
    assert (load.requests, load.errors) == (80, 0), load
    assert load.tool.startswith("python (asyncio; open loop at 40/s")
    assert inbox.waiting() == 80
