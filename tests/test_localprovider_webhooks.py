"""Tracking webhooks from the local provider, verified and parsed by Anymail's own Mailgun
tracking view in our running Django app."""

import threading

import pytest
from anymail.message import AnymailMessage
from anymail.signals import tracking
from django.core.signals import request_finished
from django.db import connections


@pytest.fixture
def tracked():
    """Every Anymail tracking event our app receives during the test."""
    events = []
    lock = threading.Lock()

    def receiver(sender, event, esp_name, **kwargs):
        with lock:
            events.append(event)

    tracking.connect(receiver, weak=False, dispatch_uid="test-localprovider-webhooks")
    yield events
    tracking.disconnect(dispatch_uid="test-localprovider-webhooks")


@pytest.fixture
def webhook_url(live_server):
    """Our app's tracking webhook. The app's receivers query the database from the live server's
    request threads; their connections are closed after each request, or the test database
    could not be dropped at the end (persistent connections outlive those threads)."""

    def close_thread_connections(**kwargs):
        if threading.current_thread() is not threading.main_thread():
            connections.close_all()

    request_finished.connect(close_thread_connections, weak=False, dispatch_uid="test-localprovider-close-db")
    yield f"{live_server.url}/anymail/mailgun/tracking/"
    request_finished.disconnect(dispatch_uid="test-localprovider-close-db")


MARKS = {
    "bounced@example.org": "bounce",
    "full@example.org": "soft-bounce",
    "angry@example.org": "complain",
    "reader@example.org": "open",
    "clicker@example.org": "click",
    "leaver@example.org": "unsubscribe",
}
EXPECTED = {
    "plain@example.org": ["delivered"],
    "bounced@example.org": ["bounced"],
    "full@example.org": ["deferred"],
    "angry@example.org": ["complained", "delivered"],
    "reader@example.org": ["delivered", "opened"],
    "clicker@example.org": ["clicked", "delivered", "opened"],
    "leaver@example.org": ["delivered", "unsubscribed"],
}


def send_batch(recipients) -> AnymailMessage:
    message = AnymailMessage(
        subject="Your digest",
        body="Hello %recipient.name%",
        from_email="newsletter@example.com",
        to=list(recipients),
        tags=["digest"],
        metadata={"digest": "12"},
    )
    message.attach_alternative('<p><a href="https://news.example.com/a/1/">Read</a></p>', "text/html")
    message.merge_data = {address: {"name": address.split("@")[0]} for address in recipients}
    message.merge_metadata = {address: {"subscriber": address.split("@")[0]} for address in recipients}
    message.send()
    return message


def test_each_recipient_gets_the_events_of_its_mark(local_provider, webhook_url, tracked):
    local_provider.configure(webhook_url=webhook_url)
    for address, event in MARKS.items():
        local_provider.mark(address, event)

    message = send_batch(EXPECTED)
    stats = local_provider.wait_for_webhooks()

    assert (stats["webhooks_sent"], stats["webhooks_failed"]) == (12, 0)
    received = {}
    for event in tracked:
        received.setdefault(event.recipient, []).append(event.event_type)
    assert {address: sorted(types) for address, types in received.items()} == EXPECTED
    by_type = {(e.recipient, e.event_type): e for e in tracked}
    for event in tracked:
        assert event.message_id == message.anymail_status.message_id
        assert event.tags == ["digest"]
        assert event.metadata == {"digest": "12", "subscriber": event.recipient.split("@")[0]}
        assert event.event_id  # Mailgun's signature token, unique per event
    bounce = by_type[("bounced@example.org", "bounced")]
    assert bounce.reject_reason == "bounced"
    assert "does not exist" in bounce.mta_response
    assert by_type[("full@example.org", "deferred")].esp_event["event-data"]["severity"] == "temporary"
    assert by_type[("clicker@example.org", "clicked")].click_url == "https://news.example.com/a/1/"


def test_webhooks_signed_with_another_key_are_refused_and_counted(local_provider, webhook_url, tracked):
    local_provider.configure(webhook_url=webhook_url, webhook_signing_key="not-our-key")

    send_batch(["ann@example.org", "bob@example.org"])
    stats = local_provider.wait_for_webhooks()

    assert (stats["webhooks_sent"], stats["webhooks_failed"]) == (0, 2)
    assert tracked == []


def test_webhooks_without_our_basic_auth_are_refused(local_provider, webhook_url, tracked):
    local_provider.configure(webhook_url=webhook_url, webhook_auth="local:wrong-password")

    send_batch(["ann@example.org"])

    assert local_provider.wait_for_webhooks()["webhooks_failed"] == 1
    assert tracked == []


def test_credentials_in_the_url_are_used_as_basic_auth(local_provider, webhook_url, tracked):
    url = webhook_url.replace("http://", "http://local:webhook-secret@")
    local_provider.configure(webhook_url=url, webhook_auth="")

    send_batch(["ann@example.org"])

    assert local_provider.wait_for_webhooks()["webhooks_sent"] == 1
    assert [(e.recipient, e.event_type) for e in tracked] == [("ann@example.org", "delivered")]


def test_an_unreachable_webhook_is_retried_then_counted_failed(local_provider):
    local_provider.configure(webhook_url="http://127.0.0.1:9/anymail/mailgun/tracking/")

    send_batch(["ann@example.org"])

    stats = local_provider.wait_for_webhooks()
    assert (stats["webhooks_sent"], stats["webhooks_failed"]) == (0, 1)
    assert stats["messages"] == 1


def test_no_webhooks_without_a_url(local_provider, tracked):
    send_batch(["ann@example.org"])

    stats = local_provider.wait_for_webhooks()
    assert (stats["webhooks_sent"], stats["webhooks_failed"]) == (0, 0)


def test_reset_restores_the_webhook_settings_given_at_start(local_provider, webhook_url):
    local_provider.configure(webhook_url=webhook_url)

    local_provider.reset()

    assert local_provider.configure() == {"webhook_url": "", "webhook_auth": True}


@pytest.mark.parametrize(
    ("mark", "message"),
    [
        ({"address": "ann@example.org", "event": "explode"}, "event must be one of"),
        ({"address": "nobody", "event": "bounce"}, "address must be an email address"),
    ],
)
def test_bad_marks_get_400(local_provider, mark, message):
    response = local_provider.session.post(f"{local_provider.url}/api/marks", json=mark, timeout=10)

    assert response.status_code == 400
    assert message in response.json()["message"]
    assert local_provider.session.get(f"{local_provider.url}/api/marks", timeout=10).json() == {}
