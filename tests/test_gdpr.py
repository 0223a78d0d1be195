"""Download my data, erase me."""

import json

import pytest
from django.test import Client

from mailer.models import Delivery
from subscribers import services, tokens
from subscribers.models import ConsentRecord, Subscriber
from tests.factories import DigestFactory, SubscriberFactory, TopicFactory

pytestmark = pytest.mark.django_db


def base(subscriber) -> str:
    return f"/preferences/{tokens.make_token('preferences', subscriber.uuid)}/"


@pytest.fixture
def subscriber():
    sport = TopicFactory(slug="sport", name="Sport")
    subscriber = SubscriberFactory(email="reader@example.org", name="Ann")
    subscriber.set_topics([sport])
    consent = services.Consent(
        source=ConsentRecord.Source.FORM, ip_address="198.51.100.1", wording="I agree."
    )
    ConsentRecord.objects.create(
        subscriber=subscriber, action="subscribe", source=consent.source, wording="I agree."
    )
    digest = DigestFactory(subject="Monday's news")
    Delivery.objects.create(digest=digest, subscriber=subscriber, status=Delivery.Status.SENT)
    return subscriber


def test_download_my_data_is_a_json_attachment_of_everything_stored(client, subscriber):
    response = client.post(base(subscriber) + "export/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"].startswith("attachment;")
    data = json.loads(response.content)
    assert data["subscriber"]["email"] == "reader@example.org" and data["subscriber"]["name"] == "Ann"
    assert data["topics"] == [{"slug": "sport", "name": "Sport"}]
    assert [c["wording"] for c in data["consent_records"]] == ["I agree."]
    [delivery] = data["deliveries"]
    assert delivery["digest__subject"] == "Monday's news" and delivery["status"] == "sent"


def test_download_is_post_only_with_csrf(subscriber):
    assert Client().get(base(subscriber) + "export/").status_code == 405
    assert Client(enforce_csrf_checks=True).post(base(subscriber) + "export/").status_code == 403


def test_erase_needs_an_explicit_confirmation(client, subscriber):
    response = client.post(base(subscriber) + "erase/")
    assert response.status_code == 400 and "tick the box" in response.content.decode()
    assert Subscriber.objects.filter(pk=subscriber.pk).exists()


def test_erase_deletes_the_subscriber_and_consents_and_anonymises_deliveries(client, subscriber):
    response = client.post(base(subscriber) + "erase/", {"confirm": "on"})
    assert response.status_code == 200 and "Your data is erased" in response.content.decode()
    assert not Subscriber.objects.filter(email="reader@example.org").exists()
    assert not ConsentRecord.objects.exists()
    delivery = Delivery.objects.get()
    assert delivery.subscriber_id is None and delivery.status == Delivery.Status.SENT
    # The old links now say the subscription is gone.
    assert client.get(base(subscriber)).status_code == 410


def test_erase_twice_is_harmless(subscriber):
    services.erase(subscriber)
    services.erase(subscriber)
    assert not Subscriber.objects.exists()
