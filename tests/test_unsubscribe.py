"""Unsubscribing: the page with a button, RFC 8058 one-click, the signal, and coming back."""

import pytest
from django.test import Client

from subscribers import services, signals, tokens
from subscribers.models import ConsentRecord, Subscriber
from tests.factories import SubscriberFactory, TopicFactory
from tests.signups import run_queued_signups

pytestmark = pytest.mark.django_db


@pytest.fixture
def received():
    """The ``unsubscribed`` signals sent during the test."""
    calls = []

    def receiver(sender, **kwargs):
        calls.append(kwargs)

    signals.unsubscribed.connect(receiver, weak=False)
    yield calls
    signals.unsubscribed.disconnect(receiver)


def token(subscriber) -> str:
    return tokens.make_token("unsubscribe", subscriber.uuid)


def test_the_link_opens_a_page_with_a_button_and_get_changes_nothing(client, received):
    subscriber = SubscriberFactory(email="reader@example.org")
    signed = token(subscriber)  # once: a token made a second later carries another timestamp
    page = client.get(f"/unsubscribe/{signed}/?d=42")
    html = page.content.decode()
    assert page.status_code == 200 and "reader@example.org" in html
    assert f'action="/unsubscribe/{signed}/?d=42"' in html and 'method="post"' in html
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE and received == []


def test_pressing_the_button_unsubscribes_records_it_and_signals_the_edition(client, received):
    subscriber = SubscriberFactory()
    response = client.post(f"/unsubscribe/{token(subscriber)}/?d=42")
    assert response.status_code == 200
    html = response.content.decode()
    assert "You are unsubscribed" in html and "Subscribe again" in html and 'action="/subscribe/"' in html
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED and subscriber.unsubscribed_at
    assert subscriber.consents.get().action == ConsentRecord.Action.UNSUBSCRIBE
    [call] = received
    assert call["subscriber"].pk == subscriber.pk and call["digest_id"] == 42
    assert call["at"] == subscriber.unsubscribed_at
    # Pressing again is harmless: no second record, no second signal.
    assert client.post(f"/unsubscribe/{token(subscriber)}/").status_code == 200
    assert subscriber.consents.count() == 1 and len(received) == 1


def test_the_resubscribe_button_goes_through_confirmation_again(client, django_capture_on_commit_callbacks):
    sport = TopicFactory(slug="sport")
    subscriber = SubscriberFactory(email="reader@example.org", frequency="weekly")
    subscriber.set_topics([sport])
    html = client.post(f"/unsubscribe/{token(subscriber)}/").content.decode()
    assert 'name="email" value="reader@example.org"' in html and f'name="topics" value="{sport.pk}"' in html
    with django_capture_on_commit_callbacks(execute=False) as queued:
        again = client.post(
            "/subscribe/",
            {"email": "reader@example.org", "frequency": "weekly", "topics": [sport.pk]},
        )
        assert run_queued_signups() == 1
    assert again.status_code == 302
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.PENDING and len(queued) == 1


def test_one_click_unsubscribes_with_the_rfc_8058_body_and_no_csrf_token(received):
    subscriber = SubscriberFactory()
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        f"/unsubscribe/{token(subscriber)}/one-click/?d=7",
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200 and "unsubscribed" in response.content.decode()
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED
    record = subscriber.consents.get()
    assert record.source == ConsentRecord.Source.EMAIL and "One-click" in record.wording
    assert [c["digest_id"] for c in received] == [7]


def test_one_click_accepts_multipart_bodies_too():
    subscriber = SubscriberFactory()
    response = Client(enforce_csrf_checks=True).post(
        f"/unsubscribe/{token(subscriber)}/one-click/", {"List-Unsubscribe": "One-Click"}
    )
    assert response.status_code == 200
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED


@pytest.mark.parametrize("body", ["", "List-Unsubscribe=Yes", "unsubscribe=One-Click"])
def test_one_click_with_a_wrong_body_is_a_400_and_changes_nothing(client, body, received):
    subscriber = SubscriberFactory()
    response = client.post(
        f"/unsubscribe/{token(subscriber)}/one-click/", body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400 and "List-Unsubscribe=One-Click" in response.content.decode()
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE and received == []


def test_one_click_with_a_bad_token_is_a_400(client):
    subscriber = SubscriberFactory()
    for bad in ["nonsense", tokens.make_token("preferences", subscriber.uuid)]:
        response = client.post(
            f"/unsubscribe/{bad}/one-click/",
            "List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded",
        )
        assert response.status_code == 400 and "not valid" in response.content.decode()
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE


def test_get_on_the_one_click_address_shows_the_normal_page_and_changes_nothing(client, received):
    subscriber = SubscriberFactory()
    signed = token(subscriber)  # once: a token made a second later carries another timestamp
    page = client.get(f"/unsubscribe/{signed}/one-click/?d=3")
    assert page.status_code == 200
    assert f'action="/unsubscribe/{signed}/?d=3"' in page.content.decode()
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE and received == []


def test_head_requests_from_link_scanners_change_nothing(client, received):
    subscriber = SubscriberFactory()
    for path in (f"/unsubscribe/{token(subscriber)}/", f"/unsubscribe/{token(subscriber)}/one-click/"):
        response = client.head(path)
        assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE and received == []


def test_a_mangled_digest_id_is_dropped_not_fatal(client, received):
    subscriber = SubscriberFactory()
    assert client.post(f"/unsubscribe/{token(subscriber)}/?d=1%0a2").status_code == 200
    assert received[0]["digest_id"] is None


def test_an_editor_or_import_unsubscribe_signals_too(received):
    subscriber = SubscriberFactory()
    consent = services.Consent(source=ConsentRecord.Source.ADMIN, wording="By request on the phone.")
    assert services.unsubscribe(subscriber, consent=consent) is True
    assert services.unsubscribe(subscriber, consent=consent) is False
    assert [c["digest_id"] for c in received] == [None]
    assert subscriber.consents.get().wording == "By request on the phone."


def test_the_emailed_links_are_the_routes_of_the_pages(settings):
    """tokens.py builds links by string formatting (cheap per recipient); they must resolve."""
    from urllib.parse import urlsplit

    from django.urls import resolve

    subscriber_uuid = SubscriberFactory.build().uuid
    links = tokens.recipient_links(subscriber_uuid, digest_id=5)
    expected = {
        tokens.confirm_url(subscriber_uuid): "subscribers:confirm",
        links["preferences_url"]: "subscribers:preferences",
        links["unsubscribe_url"]: "subscribers:unsubscribe",
        links["one_click_url"]: "subscribers:one_click",
    }
    for url, view_name in expected.items():
        assert url.startswith(settings.SITE_URL)
        assert resolve(urlsplit(url).path).view_name == view_name
    assert links["unsubscribe_url"] == tokens.unsubscribe_url(subscriber_uuid, 5)
    assert links["one_click_url"].endswith("/one-click/?d=5")
