"""The whole double opt-in across processes: the page, a real Celery worker on Redis, Anymail's
Mailgun backend over HTTP to the local provider, the links read out of the recorded emails."""

import re
import time
from urllib.parse import urlsplit

import pytest

from subscribers import tasks
from subscribers.models import ConsentRecord, Subscriber
from tests.factories import TopicFactory

pytestmark = [pytest.mark.worker]


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def wait_until(check, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)
    return result


def test_sign_up_confirm_welcome_and_one_click_unsubscribe(celery_worker, local_provider, client):
    sport = TopicFactory(slug="sport", name="Sport")
    response = client.post(
        "/subscribe/",
        {"email": "Reader@Example.org", "name": "Ann", "topics": [sport.pk], "frequency": "daily"},
    )
    assert response.status_code == 302

    [confirmation] = local_provider.wait_for(1)
    assert confirmation["recipient"] == "reader@example.org"
    confirm_link = re.search(r"https?://\S+/confirm/\S+/", confirmation["text"]).group(0)
    page = client.get(path_of(confirm_link))
    assert page.status_code == 200 and "Confirm my subscription" in page.content.decode()
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING  # GET changed nothing
    assert "You are subscribed" in client.post(path_of(confirm_link)).content.decode()

    local_provider.wait_for(2)
    [welcome] = local_provider.messages(to="reader@example.org", subject="Welcome")
    assert "Sport" in welcome["text"] and "/preferences/" in welcome["text"]
    headers = {k.lower(): v for k, v in welcome["headers"].items()}
    assert headers["list-unsubscribe-post"] == "List-Unsubscribe=One-Click"
    one_click = re.search(r"<(https?://[^>]+/one-click/[^>]*)>", headers["list-unsubscribe"]).group(1)

    # What a mail client does for RFC 8058: a POST with this exact body, no cookies.
    response = client.post(
        path_of(one_click), "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200
    subscriber = Subscriber.objects.get()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED
    assert list(subscriber.consents.values_list("action", flat=True)) == [
        ConsentRecord.Action.SUBSCRIBE,
        ConsentRecord.Action.CONFIRM,
        ConsentRecord.Action.UNSUBSCRIBE,
    ]
    assert local_provider.stats()["messages"] == 2


def test_repeated_sign_ups_mail_one_confirmation(celery_worker, local_provider, client):
    for _ in range(3):
        client.post("/subscribe/", {"email": "victim@example.org", "frequency": "daily"})
    local_provider.wait_for(1)
    time.sleep(1)  # give any (wrong) further sends the time to arrive
    assert len(local_provider.messages(to="victim@example.org")) == 1


def test_a_provider_outage_is_retried_with_backoff_until_the_confirmation_goes_out(
    celery_worker, local_provider, client, monkeypatch
):
    monkeypatch.setattr(tasks, "RETRY_BASE_SECONDS", 0.3)
    local_provider.set_faults(outage_seconds=1.0)
    client.post("/subscribe/", {"email": "patient@example.org", "frequency": "daily"})
    [message] = local_provider.wait_for(1, timeout=30)
    assert message["recipient"] == "patient@example.org"
    assert local_provider.stats()["rejected_calls"] >= 1
    time.sleep(0.5)
    assert len(local_provider.messages()) == 1


def test_a_permanent_refusal_is_recorded_not_retried(celery_worker, local_provider, client):
    local_provider.set_faults(error_rate=1.0, status_codes=[400])
    client.post("/subscribe/", {"email": "refused@example.org", "frequency": "daily"})
    subscriber = wait_until(lambda: Subscriber.objects.exclude(last_email_error="").first())
    assert "refused by the provider" in subscriber.last_email_error
    time.sleep(0.5)
    assert local_provider.stats()["rejected_calls"] == 1
