"""Sign-up tells a stranger nothing and cannot be used to flood someone's inbox: the answer
(status, body, headers) and the work a request does are the same for a new address and for
every kind of known one; however many sign-ups name one address, from however many
networks and in whatever spelling, it gets one confirmation per window (counted at the
provider). Timing is measured, not asserted, by bench/load_signups.py."""

import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from subscribers.models import Subscriber
from subscribers.tasks import send_confirmation
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db

KNOWN = {
    "new": None,
    "pending": Subscriber.Status.PENDING,
    "active": Subscriber.Status.ACTIVE,
    "unsubscribed": Subscriber.Status.UNSUBSCRIBED,
    "bounced": Subscriber.Status.BOUNCED,
    "complained": Subscriber.Status.COMPLAINED,
}


@pytest.fixture
def unlimited(settings):
    settings.SIGNUP_RATE_LIMIT_PER_IP = 10**6


def answer(client, kind: str, django_capture_on_commit_callbacks) -> tuple:
    email = f"{kind}@example.org"
    if KNOWN[kind]:
        SubscriberFactory(email=email, status=KNOWN[kind])
    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks() as queued:
        page = client.post("/subscribe/", {"email": email, "frequency": "daily"})
        api = client.post("/api/subscribe", json.dumps({"email": email}), content_type="application/json")
    writes = [q["sql"].split()[0] for q in queries.captured_queries if not q["sql"].startswith("SELECT")]
    return (
        (
            page.status_code,
            page.get("Location"),
            api.status_code,
            api.content,
            tuple(sorted(api.headers.items())),
        ),
        len(queued),
        sorted(writes),
    )


def test_the_answer_and_the_work_are_the_same_for_new_and_known_addresses(
    client, unlimited, django_capture_on_commit_callbacks
):
    results = {kind: answer(client, kind, django_capture_on_commit_callbacks) for kind in KNOWN}
    responses = {kind: r[0] for kind, r in results.items()}
    assert len(set(responses.values())) == 1, responses
    # Each request queues the same task and writes a consent record, whoever the address is.
    assert {kind: r[1] for kind, r in results.items()} == dict.fromkeys(KNOWN, 2)  # page + API
    assert all("INSERT" in r[2] for r in results.values()), {k: r[2] for k, r in results.items()}


@pytest.fixture
def tasks_run_here(monkeypatch):
    """Queued confirmations run at once in this process (and go to the provider)."""
    monkeypatch.setattr(
        send_confirmation, "delay", lambda *args, **kwargs: send_confirmation.apply(args, kwargs, throw=True)
    )


def test_sign_up_flooding_of_one_address_sends_one_confirmation(
    unlimited, tasks_run_here, local_provider, django_capture_on_commit_callbacks
):
    spellings = ["victim@example.org", "VICTIM@Example.ORG", "  victim@example.org ", "Victim@EXAMPLE.org"]
    for n in range(24):
        client = Client(REMOTE_ADDR=f"198.51.100.{n + 1}")  # a botnet: a new network each time
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/subscribe/", {"email": spellings[n % len(spellings)], "frequency": "daily"}
            )
        assert response.status_code == 302
    assert Subscriber.objects.filter(email="victim@example.org").count() == 1
    assert len(local_provider.messages(to="victim@example.org")) == 1
    assert local_provider.stats()["messages"] == 1


def test_one_network_is_rate_limited_and_told_when_to_come_back(client, settings):
    settings.SIGNUP_RATE_LIMIT_PER_IP = 5
    answers = [
        client.post("/subscribe/", {"email": f"r{n}@example.org", "frequency": "daily"}).status_code
        for n in range(8)
    ]
    assert answers == [302] * 5 + [429] * 3
    response = client.post(
        "/api/subscribe", json.dumps({"email": "x@example.org"}), content_type="application/json"
    )
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert Subscriber.objects.count() == 5
