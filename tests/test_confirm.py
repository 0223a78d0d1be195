"""The confirmation email and the confirmation page."""

import re
import time

import pytest
from django.core import signing

from subscribers import emails, tokens
from subscribers.models import ConsentRecord, Subscriber
from tests.factories import SubscriberFactory, TopicFactory

pytestmark = pytest.mark.django_db


def pending(**kwargs) -> Subscriber:
    return SubscriberFactory(status=Subscriber.Status.PENDING, confirmed_at=None, **kwargs)


def link_in(text: str, path: str) -> str:
    match = re.search(rf"https?://\S+/{path}/\S+/", text)
    assert match, f"no /{path}/ link in: {text}"
    return match.group(0)


def expired_confirm_token(subscriber) -> str:
    """A genuine confirmation token, signed eight days ago."""
    signer = tokens._signer(tokens.Purpose.CONFIRM)
    old = signing.b62_encode(int(time.time()) - 8 * 24 * 3600)
    return signing.Signer.sign(signer, f"{subscriber.uuid.hex}.{old}")


def test_the_confirmation_email_carries_the_signed_link_and_nothing_the_sender_typed(
    local_provider, settings
):
    # A typed name would let anyone send text of their choice to a stranger's inbox.
    subscriber = pending(email="reader@example.org", name="Cheap pills at spam.example")
    assert emails.send_confirmation(subscriber.pk) == "sent"
    [message] = local_provider.messages(to="reader@example.org")
    assert message["subject"] == f"Please confirm your subscription to {settings.PUBLICATION_NAME}"
    link = link_in(message["text"], "confirm")
    # The link is ours and names this subscriber (its timestamp is the send's, not now's).
    assert link.startswith(f"{settings.SITE_URL}/confirm/")
    assert link in message["html"]
    assert "spam.example" not in message["html"] and "spam.example" not in message["text"]
    assert tokens.read_token(tokens.Purpose.CONFIRM, link.rstrip("/").rsplit("/", 1)[1]) == subscriber.uuid


def test_at_most_one_confirmation_per_address_per_window(local_provider, settings):
    subscriber = pending()
    assert emails.send_confirmation(subscriber.pk) == "sent"
    assert emails.send_confirmation(subscriber.pk) == "recently-sent"
    assert len(local_provider.messages()) == 1
    # An editor may resend on purpose.
    assert emails.send_confirmation(subscriber.pk, force=True) == "sent"
    settings.CONFIRMATION_RESEND_WINDOW = 0
    assert emails.send_confirmation(subscriber.pk) == "sent"
    assert len(local_provider.messages()) == 3


@pytest.mark.parametrize("status", ["active", "unsubscribed", "bounced", "complained"])
def test_only_pending_subscribers_are_sent_a_confirmation(local_provider, status):
    subscriber = SubscriberFactory(status=status)
    assert emails.send_confirmation(subscriber.pk) == "not-pending"
    assert emails.send_confirmation(subscriber.pk + 1000) == "gone"
    assert local_provider.messages() == []


def test_provider_outages_are_transient_and_refusals_are_recorded(local_provider):
    subscriber = pending()
    local_provider.set_faults(outage=True)
    with pytest.raises(emails.TransientEmailError):
        emails.send_confirmation(subscriber.pk)
    local_provider.set_faults(error_rate=1.0, status_codes=[429])
    with pytest.raises(emails.TransientEmailError):
        emails.send_confirmation(subscriber.pk, claimed=True)
    local_provider.set_faults(error_rate=1.0, status_codes=[400])
    with pytest.raises(emails.PermanentEmailError):
        emails.send_confirmation(subscriber.pk, claimed=True)
    subscriber.refresh_from_db()
    assert "refused by the provider" in subscriber.last_email_error
    local_provider.clear_faults()
    # A retry of a send that already took the window goes out.
    assert emails.send_confirmation(subscriber.pk, claimed=True) == "sent"


def test_the_link_opens_a_page_with_a_button_and_get_changes_nothing(client):
    subscriber = pending(email="reader@example.org")
    page = client.get(f"/confirm/{tokens.make_token('confirm', subscriber.uuid)}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'method="post"' in html and "Confirm my subscription" in html and "reader@example.org" in html
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.PENDING and not subscriber.consents.exists()


def test_pressing_the_button_confirms_records_consent_and_queues_the_welcome(
    client, django_capture_on_commit_callbacks
):
    subscriber = pending()
    url = f"/confirm/{tokens.make_token('confirm', subscriber.uuid)}/"
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(url, HTTP_USER_AGENT="Mail app", REMOTE_ADDR="198.51.100.9")
    assert response.status_code == 200 and "You are subscribed" in response.content.decode()
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE and subscriber.confirmed_at
    record = subscriber.consents.get()
    assert (record.action, record.source, record.ip_address, record.user_agent) == (
        ConsentRecord.Action.CONFIRM,
        ConsentRecord.Source.EMAIL,
        "198.51.100.9",
        "Mail app",
    )
    assert len(callbacks) == 1  # the welcome email, queued once the confirmation is committed
    with django_capture_on_commit_callbacks() as again:
        second = client.post(url)
    assert second.status_code == 200 and "You are subscribed" in second.content.decode()
    assert subscriber.consents.count() == 1 and again == []


def test_a_tampered_link_gets_a_clear_400_page(client):
    subscriber = pending()
    token = tokens.make_token("confirm", subscriber.uuid)
    for bad in [token[:-2] + "xx", "garbage", tokens.make_token("unsubscribe", subscriber.uuid)]:
        response = client.post(f"/confirm/{bad}/")
        assert response.status_code == 400
        assert "This link does not work" in response.content.decode()
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.PENDING


def test_an_expired_link_gets_a_410_page_offering_to_sign_up_again(client):
    subscriber = pending()
    response = client.post(f"/confirm/{expired_confirm_token(subscriber)}/")
    assert response.status_code == 410
    html = response.content.decode()
    assert "Sign up again" in html and 'href="/"' in html
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.PENDING


def test_a_confirmation_link_does_not_bring_back_someone_who_unsubscribed(client):
    subscriber = SubscriberFactory(status=Subscriber.Status.UNSUBSCRIBED)
    response = client.post(f"/confirm/{tokens.make_token('confirm', subscriber.uuid)}/")
    assert response.status_code == 410
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED


def test_a_link_for_an_erased_subscriber_says_so(client):
    subscriber = pending()
    token = tokens.make_token("confirm", subscriber.uuid)
    subscriber.delete()
    response = client.get(f"/confirm/{token}/")
    assert response.status_code == 410 and "no longer exists" in response.content.decode()


def test_the_welcome_email_lists_choices_and_links_with_one_click_headers(local_provider, settings):
    sport = TopicFactory(slug="sport", name="Sport")
    subscriber = SubscriberFactory(email="reader@example.org", name="Ann", frequency="weekly")
    subscriber.set_topics([sport])
    assert emails.send_welcome(subscriber.pk) == "sent"
    [message] = local_provider.messages(to="reader@example.org")
    assert message["subject"] == f"Welcome to {settings.PUBLICATION_NAME}"
    # Links are compared by what they name: their timestamps are the send's, not this test's.
    preferences = link_in(message["text"], "preferences")
    unsubscribe = link_in(message["text"], "unsubscribe")
    for link, purpose in (
        (preferences, tokens.Purpose.PREFERENCES),
        (unsubscribe, tokens.Purpose.UNSUBSCRIBE),
    ):
        assert link.startswith(settings.SITE_URL)
        assert tokens.read_token(purpose, link.rstrip("/").rsplit("/", 1)[1]) == subscriber.uuid
    for text in (message["text"], message["html"]):
        assert preferences in text and unsubscribe in text
        assert "Sport" in text and "Weekly digest" in text
    headers = {k.lower(): v for k, v in message["headers"].items()}
    assert headers["list-unsubscribe"] == f"<{unsubscribe}one-click/>"
    assert headers["list-unsubscribe-post"] == "List-Unsubscribe=One-Click"
    SubscriberFactory(email="gone@example.org", status=Subscriber.Status.UNSUBSCRIBED)
    assert emails.send_welcome(Subscriber.objects.get(email="gone@example.org").pk) == "not-active"
