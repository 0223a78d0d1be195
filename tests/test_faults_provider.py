"""The provider misbehaving during an edition, through a real Celery worker and the local
provider over HTTP: a share of calls answered 5xx or 429, calls that hang past the client's
timeout after the provider took the messages, a spell of 503s, and a spell with nothing
listening at all. Every reader still gets exactly one copy and the figures add up."""

import time

import pytest

from mailer.models import Batch, Digest
from mailer.tasks.delivery import start_edition
from tests.test_delivery_fanout import add_subscribers, make_edition
from tests.test_faults_support import assert_each_once, assert_figures_add_up, free_port, wait_until_sent

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

RECIPIENTS = 1000
FLAKY = {
    "error_rate": 0.2,
    "status_codes": [500, 502, 503, 429],
    # The provider records the messages and then does not answer within the client's timeout.
    "timeout_rate": 0.08,
    "timeout_accepts": True,
    "hang_seconds": 1.5,
    "latency_ms": 40,
}


@pytest.fixture(autouse=True)
def _fast_recovery(settings):
    settings.PROVIDER_HONOURS_IDEMPOTENCY_KEY = True
    settings.PROVIDER_BATCH_SIZE = 50
    settings.DELIVERY_RETRY_BACKOFF_MS = 50
    settings.DELIVERY_RETRY_BACKOFF_MAX = 1
    settings.DELIVERY_MAX_RETRIES = 30
    settings.DELIVERY_BATCH_LEASE = 5
    settings.PROVIDER_OUTAGE_THRESHOLD = 5
    settings.PROVIDER_OUTAGE_PROBE_SECONDS = 1


def wait_for_status(digest: Digest, status: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        digest.refresh_from_db(fields=["status"])
        if digest.status == status:
            return True
        time.sleep(0.05)
    return False


def test_flaky_provider_outage_and_unreachable_spell_lose_and_double_nothing(
    celery_worker, local_provider, settings
):
    add_subscribers(RECIPIENTS)
    digest = make_edition()
    # Anymail's read timeout shorter than a hung call, so hung calls are "no answer" to us.
    settings.ANYMAIL = {**settings.ANYMAIL, "REQUESTS_TIMEOUT": (1, 1)}
    local_provider.set_faults(**FLAKY, seed=3)
    start_edition.delay(digest.pk)
    local_provider.wait_for(200, timeout=30)

    # The provider answers every call 503 for two seconds: the edition pauses by itself and a
    # probe resumes it when the provider is back.
    local_provider.set_faults(outage_seconds=2.0, latency_ms=40)
    paused = wait_for_status(digest, Digest.Status.PAUSED, timeout=10)
    assert wait_for_status(digest, Digest.Status.SENDING, timeout=15) or digest.status == Digest.Status.SENT
    local_provider.set_faults(**FLAKY, seed=4)
    local_provider.wait_for(500, timeout=30)

    # Then nothing listens at the provider's address for two seconds (connection refused).
    good = settings.ANYMAIL
    settings.ANYMAIL = {**good, "MAILGUN_API_URL": f"http://127.0.0.1:{free_port()}/v3"}
    time.sleep(2)
    settings.ANYMAIL = good

    wait_until_sent(digest, timeout=90)
    stats = assert_each_once(local_provider, "flaky provider + outage + unreachable", RECIPIENTS)
    assert stats["rejected_calls"] > 0 and stats["calls"] > RECIPIENTS // 50
    assert paused, "the 503 spell never paused the edition"
    assert set(Batch.objects.filter(digest=digest).values_list("status", flat=True)) == {Batch.Status.SENT}
    assert_figures_add_up(digest, total=RECIPIENTS, sent=RECIPIENTS)


def test_rate_limited_provider_sends_everything_once(celery_worker, local_provider, settings):
    """A provider that answers 429 beyond 3 calls a second: batches wait and come back."""
    add_subscribers(400)
    digest = make_edition()
    local_provider.set_faults(rate_limit_per_second=3, latency_ms=20)

    start_edition.delay(digest.pk)

    wait_until_sent(digest, timeout=60)
    stats = assert_each_once(local_provider, "429 rate limit (3 calls/s)", 400)
    assert stats["accepted_calls"] == 8 and stats["rejected_calls"] > 0
    assert_figures_add_up(digest, total=400, sent=400)
